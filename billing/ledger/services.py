"""Writes to the ledger: posting balanced entries (one or a batch) and reversing them.

The hot path is ONE statement whatever the size of the batch (after TigerBeetle and Formance):
the entries are inserted with `ON CONFLICT (idempotency_key) DO NOTHING` (a concurrent twin of a
key waits on the unique index), the accounts touched are locked in id order (a stable order, so
two postings never deadlock on each other), the lines of the new entries go in and each touched
account's running totals get one UPDATE. A key that was already used is then checked: same input
hash, the first entry is returned and nothing was written; another input, `ledger_key_reused`
(and the transaction rolls back). The first use of an account in a currency (or party) takes a
slower path that creates it, race-safe.

PostgreSQL checks at commit that each entry has lines and balances per currency (a deferred
constraint trigger), checks as each statement ends that every line's entry was created by the
same transaction and that its account exists in its currency, and refuses any later UPDATE or
DELETE of an entry or a line.

Routine postings are not copied into the audit log: the journal is itself append-only and names
its source; the calling service (invoice_finalize, payment_record...) audits its own action.
Reversals, which are corrections made by someone, are audited.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from billing.ledger.models import CHART, Account, JournalEntry, JournalLine, Side
from core import clock
from core.actors import SYSTEM, Actor
from core.bulk import array_literal
from core.errors import ConflictError, ValidationError
from core.money import normalize_currency, parse_decimal, quantum
from core.services import audit_record, audit_snapshot

ZERO = Decimal("0")

_ENTRY_TABLE = JournalEntry._meta.db_table
_ENTRY_ATTNAMES = [f.attname for f in JournalEntry._meta.concrete_fields]
_LINE_TABLE = JournalLine._meta.db_table
_ACCOUNT_TABLE = Account._meta.db_table


@dataclass(frozen=True, slots=True)
class Posting:
    """One line to post: an account of the chart, a currency, a side and a positive amount."""

    account_code: str
    currency: str
    side: str
    amount: Decimal
    party: str = ""

    @classmethod
    def debit(cls, account_code: str, currency: str, amount: Decimal, party: str = "") -> Posting:
        return cls(account_code, currency, Side.DEBIT, amount, party)

    @classmethod
    def credit(cls, account_code: str, currency: str, amount: Decimal, party: str = "") -> Posting:
        return cls(account_code, currency, Side.CREDIT, amount, party)


@dataclass(frozen=True, slots=True)
class EntrySpec:
    """One journal entry of a batch (the keyword arguments of `ledger_post`)."""

    idempotency_key: str
    effective_date: date
    source_type: str
    source_id: str
    description: str
    lines: Sequence[Posting]
    reverses_id: int | None = None


@dataclass(slots=True)
class _Prepared:
    spec: EntrySpec
    # (code, currency, party, side, amount) with normalized currency and rounded amount
    lines: list[tuple[str, str, str, str, Decimal]]
    input_hash: str = field(default="")


def ledger_post(
    *,
    idempotency_key: str,
    effective_date: date,
    source_type: str,
    source_id: str | int,
    description: str = "",
    lines: Sequence[Posting],
) -> JournalEntry:
    """Post one balanced entry and update the balances of its accounts; idempotent on the key.

    Opens `transaction.atomic()` (a savepoint inside the caller's transaction, which is how
    billing services call it). The same key with the same input returns the first entry and
    writes nothing; the same key with a different input raises ConflictError
    `ledger_key_reused`.
    """
    spec = EntrySpec(
        idempotency_key=idempotency_key,
        effective_date=effective_date,
        source_type=source_type,
        source_id=str(source_id),
        description=description,
        lines=lines,
    )
    return ledger_post_batch(entries=[spec])[0]


def ledger_post_batch(*, entries: Sequence[EntrySpec]) -> list[JournalEntry]:
    """Post many entries in one transaction with the same few statements as one entry.

    All or nothing: one invalid entry or one reused key refuses the whole batch. Returns the
    entries in the order given (replayed ones as they were first posted).
    """
    if not entries:
        return []
    prepared = [_prepare(spec, index, len(entries) > 1) for index, spec in enumerate(entries)]
    keys = [p.spec.idempotency_key for p in prepared]
    if len(set(keys)) != len(keys):
        raise ValidationError(
            "Each entry of a batch needs its own idempotency key.",
            code="ledger_duplicate_key",
            param="idempotency_key",
        )
    created_at = clock.now()
    with transaction.atomic(), connection.cursor() as cursor:
        new_ids, booked_lines, txid = _post_statement(cursor, prepared, created_at)
        fresh = [p for p in prepared if p.spec.idempotency_key in new_ids]
        if fresh and not booked_lines:
            # First use of an account: the statement locked the accounts that exist; create
            # the others (and lock them), then book the lines.
            accounts = _lock_accounts(cursor, _account_keys(fresh), created_at)
            _insert_lines(cursor, fresh, new_ids, accounts)
            _update_balances(cursor, fresh, accounts)
        replayed = [p for p in prepared if p.spec.idempotency_key not in new_ids]
        existing = _check_replays(replayed) if replayed else {}
    result = []
    alias = connection.alias
    for p in prepared:
        key = p.spec.idempotency_key
        if key in existing:
            result.append(existing[key])
        else:
            result.append(_entry_instance(p, new_ids[key], created_at, txid, alias))
    return result


def ledger_reverse(
    *,
    entry: JournalEntry,
    idempotency_key: str,
    effective_date: date,
    reason: str,
    actor: Actor = SYSTEM,
) -> JournalEntry:
    """Post the mirror image of `entry` (every debit a credit and back) and link the two.

    This is the only way to correct a posted entry. An entry is reversed at most once; asking
    again with the same key returns the reversal, with another key is a ConflictError.
    """
    if not reason.strip():
        raise ValidationError("Say why the entry is reversed.", code="required", param="reason")
    with transaction.atomic():
        # Serializes reversals of one entry: FOR UPDATE locks the row without updating it.
        original = JournalEntry.objects.select_for_update().get(pk=entry.pk)
        previous = JournalEntry.objects.filter(reverses=original).first()
        if previous is not None and previous.idempotency_key != idempotency_key:
            raise ConflictError(
                f"Entry #{original.pk} is already reversed by entry #{previous.pk}.",
                code="ledger_already_reversed",
                param="entry",
            )
        lines = [
            Posting(
                account_code=line.account.code,
                currency=line.currency,
                side=Side.CREDIT if line.side == Side.DEBIT else Side.DEBIT,
                amount=line.amount,
                party=line.account.party,
            )
            for line in original.lines.select_related("account").order_by("id")
        ]
        spec = EntrySpec(
            idempotency_key=idempotency_key,
            effective_date=effective_date,
            source_type=original.source_type,
            source_id=original.source_id,
            description=f"Reversal of #{original.pk}: {reason.strip()}"[:255],
            lines=lines,
            reverses_id=original.pk,
        )
        (reversal,) = ledger_post_batch(entries=[spec])
        if previous is None:
            audit_record(
                actor=actor,
                action="journal_entry.reverse",
                instance=reversal,
                after=audit_snapshot(reversal),
            )
    return reversal


# --- validation -------------------------------------------------------------------------------


def _prepare(spec: EntrySpec, index: int, in_batch: bool) -> _Prepared:
    where = f"entries[{index}]." if in_batch else ""
    key = spec.idempotency_key
    if not isinstance(key, str) or not key.strip() or len(key) > 200:
        raise ValidationError(
            "An idempotency key of 1 to 200 characters is required.",
            code="invalid_idempotency_key",
            param=f"{where}idempotency_key",
        )
    if not isinstance(spec.effective_date, date) or isinstance(spec.effective_date, datetime):
        raise ValidationError("The effective date must be a date.", param=f"{where}effective_date")
    if not spec.source_type or len(spec.source_type) > 40 or len(spec.source_id) > 64:
        raise ValidationError(
            "A source type (at most 40 characters) and id (at most 64) are required.",
            param=f"{where}source_type",
        )
    if len(spec.description) > 255:
        raise ValidationError(
            "The description has 255 characters at most.", param=f"{where}description"
        )
    if len(spec.lines) < 2:
        raise ValidationError(
            "An entry has at least two lines.", code="ledger_too_few_lines", param=f"{where}lines"
        )
    # The error params are only spelled out on failure: this loop runs for every line posted.
    lines = []
    net: dict[str, Decimal] = {}
    for number, posting in enumerate(spec.lines):
        code = _CHART_CODES.get(posting.account_code)
        if code is None:
            raise ValidationError(
                f"{posting.account_code!r} is not an account of the chart.",
                code="ledger_unknown_account",
                param=f"{where}lines[{number}].account_code",
            )
        if posting.side == _DEBIT:
            side = _DEBIT
        elif posting.side == _CREDIT:
            side = _CREDIT
        else:
            raise ValidationError(
                "A line is a debit or a credit.",
                code="invalid",
                param=f"{where}lines[{number}].side",
            )
        if not isinstance(posting.party, str) or len(posting.party) > 64:
            raise ValidationError(
                "A party has 64 characters at most.", param=f"{where}lines[{number}].party"
            )
        currency = _currencies.get(posting.currency) if isinstance(posting.currency, str) else None
        if currency is None:
            currency = _currency(posting.currency, f"{where}lines[{number}].currency")
        amount = posting.amount
        if type(amount) is not Decimal or not amount.is_finite():
            amount = parse_decimal(amount, param=f"{where}lines[{number}].amount")
        if amount <= 0:
            raise ValidationError(
                "Line amounts are positive; the side says which way they go.",
                code="ledger_amount_not_positive",
                param=f"{where}lines[{number}].amount",
            )
        rounded = amount.quantize(quantum(currency))
        if rounded != amount:
            raise ValidationError(
                f"{currency} amounts are posted in whole minor units.",
                code="invalid_amount",
                param=f"{where}lines[{number}].amount",
            )
        net[currency] = net.get(currency, ZERO) + (rounded if side == _DEBIT else -rounded)
        lines.append((code, currency, posting.party, side, rounded))
    for currency, balance in net.items():
        if balance:
            debits, credits = (
                sum((a for _, cur, _, sd, a in lines if cur == currency and sd == wanted), ZERO)
                for wanted in (_DEBIT, _CREDIT)
            )
            raise ValidationError(
                f"The entry does not balance in {currency}: debits {debits}, credits {credits}.",
                code="ledger_unbalanced",
                param=f"{where}lines",
            )
    prepared = _Prepared(spec=spec, lines=lines)
    prepared.input_hash = _input_hash(prepared)
    return prepared


_CHART_CODES = {code: str(code) for code in CHART}  # an AccountCode or its value -> the value
_DEBIT, _CREDIT = str(Side.DEBIT), str(Side.CREDIT)
_currencies: dict[str, str] = {}


def _currency(value: str, param: str) -> str:
    """The normalized code of a currency the cache does not know yet (or an error)."""
    try:
        code = normalize_currency(value)
    except ValidationError as error:
        raise ValidationError(error.message, code=error.code, param=param) from None
    _currencies[value] = code
    return code


# json.dumps(separators=(",", ":"), ensure_ascii=False) without building an encoder per call
_canonical_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _input_hash(prepared: _Prepared) -> str:
    spec = prepared.spec
    canonical = [
        spec.effective_date.isoformat(),
        spec.source_type,
        spec.source_id,
        spec.description,
        spec.reverses_id,
        # The same lines in another order are the same entry.
        sorted(
            [code, currency, party, side, f"{amount:f}"]
            for code, currency, party, side, amount in prepared.lines
        ),
    ]
    return hashlib.sha256(_canonical_json(canonical).encode()).hexdigest()


# --- the statements ---------------------------------------------------------------------------


# The whole posting in one round trip. The CTEs run in a forced order: the entries first (a
# concurrent twin of a key waits here, before any account is locked), then the accounts, locked
# in id order once there is something to book (the InitPlan on new_entries), then the lines of
# the new entries only and one UPDATE of each touched account (its aggregate needs every
# locked row first). If an account does not exist yet, no line is booked (the caller books them
# all after creating it, in the order given).
_POST_SQL = f"""
WITH e AS (
    SELECT * FROM unnest(%s::text[], %s::text[], %s::date[], %s::text[], %s::text[], %s::text[],
        %s::bigint[]) WITH ORDINALITY AS e(idempotency_key, input_hash, effective_date,
        source_type, source_id, description, reverses_id, n)
), new_entries AS (
    INSERT INTO {_ENTRY_TABLE} (idempotency_key, input_hash, effective_date, source_type,
        source_id, description, reverses_id, created_at)
    SELECT idempotency_key, input_hash, effective_date, source_type, source_id, description,
        reverses_id, %s FROM e ORDER BY n
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, idempotency_key
), accounts AS (
    SELECT a.id, a.currency, k.position FROM {_ACCOUNT_TABLE} a
    JOIN unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY AS k(code, currency, party,
        position) ON a.code = k.code AND a.currency = k.currency AND a.party = k.party
    WHERE (SELECT count(*) FROM new_entries) > 0
    ORDER BY a.id FOR NO KEY UPDATE OF a
), l AS (
    SELECT ne.id AS entry_id, acc.id AS account_id, x.side, x.amount, acc.currency, x.ord
    FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::numeric[])
        WITH ORDINALITY AS x(n, account, side, amount, ord)
    JOIN e ON e.n = x.n
    JOIN new_entries ne ON ne.idempotency_key = e.idempotency_key
    JOIN accounts acc ON acc.position = x.account
    WHERE (SELECT count(*) FROM accounts) = %s
), inserted AS (
    INSERT INTO {_LINE_TABLE} (entry_id, account_id, side, amount, currency)
    SELECT entry_id, account_id, side, amount, currency FROM l ORDER BY ord
    RETURNING 1
), moved AS (
    UPDATE {_ACCOUNT_TABLE} a
    SET debit_total = a.debit_total + m.debit, credit_total = a.credit_total + m.credit
    FROM (
        SELECT account_id,
            COALESCE(SUM(amount) FILTER (WHERE side = 'debit'), 0) AS debit,
            COALESCE(SUM(amount) FILTER (WHERE side = 'credit'), 0) AS credit
        FROM l GROUP BY account_id
    ) m
    WHERE a.id = m.account_id
    RETURNING 1
)
SELECT
    (SELECT array_agg(ARRAY[idempotency_key, id::text]) FROM new_entries),
    (SELECT count(*) FROM inserted),
    txid_current()
"""  # noqa: S608 - table names come from the models


def _post_statement(
    cursor: Any, prepared: list[_Prepared], created_at: datetime
) -> tuple[dict[str, int], int, int]:
    """Insert the new entries and, if all their accounts exist, book them in one statement.

    Returns ({new key: id}, the number of lines booked, the transaction's id).
    """
    specs = [p.spec for p in prepared]
    keys = _account_keys(prepared)
    position = {key: index for index, key in enumerate(keys, start=1)}
    numbers, accounts, sides, amounts = [], [], [], []
    for number, p in enumerate(prepared, start=1):
        for code, cur, party, side, amount in p.lines:
            numbers.append(number)
            accounts.append(position[(code, cur, party)])
            sides.append(side)
            amounts.append(amount)
    cursor.execute(
        _POST_SQL,
        [
            array_literal([s.idempotency_key for s in specs]),
            array_literal([p.input_hash for p in prepared]),
            array_literal([s.effective_date for s in specs]),
            array_literal([s.source_type for s in specs]),
            array_literal([s.source_id for s in specs]),
            array_literal([s.description for s in specs]),
            array_literal([s.reverses_id for s in specs]),
            created_at,
            array_literal([k[0] for k in keys]),
            array_literal([k[1] for k in keys]),
            array_literal([k[2] for k in keys]),
            array_literal(numbers),
            array_literal(accounts),
            array_literal(sides),
            array_literal(amounts),
            len(keys),
        ],
    )
    new_entries, booked, txid = cursor.fetchone()
    return {key: int(pk) for key, pk in new_entries or []}, booked, txid


def _check_replays(replayed: list[_Prepared]) -> dict[str, JournalEntry]:
    """The first postings of the replayed keys, after checking each is the same input."""
    found = {
        entry.idempotency_key: entry
        for entry in JournalEntry.objects.filter(
            idempotency_key__in=[p.spec.idempotency_key for p in replayed]
        )
    }
    for p in replayed:
        entry = found[p.spec.idempotency_key]
        if entry.input_hash != p.input_hash:
            raise ConflictError(
                f"The idempotency key {p.spec.idempotency_key!r} was used for another entry "
                f"(#{entry.pk}); a retry must repeat the same posting.",
                code="ledger_key_reused",
                param="idempotency_key",
            )
    return found


AccountKey = tuple[str, str, str]  # (code, currency, party)


def _account_keys(prepared: list[_Prepared]) -> list[AccountKey]:
    return sorted({(code, cur, party) for p in prepared for code, cur, party, _, _ in p.lines})


def _select_for_update(cursor: Any, keys: list[AccountKey]) -> dict[AccountKey, int]:
    cursor.execute(
        f"SELECT a.id, a.code, a.currency, a.party FROM {_ACCOUNT_TABLE} a "  # noqa: S608
        "JOIN unnest(%s::text[], %s::text[], %s::text[]) k(code, currency, party) "
        "ON a.code = k.code AND a.currency = k.currency AND a.party = k.party "
        "ORDER BY a.id FOR NO KEY UPDATE OF a",
        [list(column) for column in zip(*keys, strict=True)],
    )
    return {(code, currency, party): pk for pk, code, currency, party in cursor.fetchall()}


def _lock_accounts(
    cursor: Any, keys: list[AccountKey], created_at: datetime
) -> dict[AccountKey, int]:
    """Lock the accounts in id order, creating the missing ones first; returns their ids.

    Missing accounts (first use of a code in a currency) are inserted in sorted key order with
    ON CONFLICT DO NOTHING, so two postings creating the same accounts wait on each other in the
    same order, and then every account is locked again in id order (already held: no wait).
    """
    accounts = _select_for_update(cursor, keys)
    missing = [key for key in keys if key not in accounts]
    if missing:
        codes, currencies, parties = (list(column) for column in zip(*missing, strict=True))
        cursor.execute(
            f"INSERT INTO {_ACCOUNT_TABLE} (code, currency, party, type, debit_total, "  # noqa: S608
            "credit_total, created_at) "
            "SELECT k.code, k.currency, k.party, k.type, 0, 0, %s "
            "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) "
            "WITH ORDINALITY k(code, currency, party, type, n) ORDER BY n "
            "ON CONFLICT (code, currency, party) DO NOTHING",
            [created_at, codes, currencies, parties, [CHART[code] for code in codes]],
        )
        accounts = _select_for_update(cursor, keys)
    return accounts


def _insert_lines(
    cursor: Any, fresh: list[_Prepared], new_ids: dict[str, int], accounts: dict[AccountKey, int]
) -> None:
    entry_ids, account_ids, sides, amounts, currencies = [], [], [], [], []
    for p in fresh:
        entry_id = new_ids[p.spec.idempotency_key]
        for code, cur, party, side, amount in p.lines:
            entry_ids.append(entry_id)
            account_ids.append(accounts[(code, cur, party)])
            sides.append(side)
            amounts.append(amount)
            currencies.append(cur)
    cursor.execute(
        f"INSERT INTO {_LINE_TABLE} (entry_id, account_id, side, amount, currency) "  # noqa: S608
        "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::numeric[], %s::text[])",
        [entry_ids, account_ids, sides, amounts, currencies],
    )


def _update_balances(cursor: Any, fresh: list[_Prepared], accounts: dict[AccountKey, int]) -> None:
    movements: dict[int, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for p in fresh:
        for code, cur, party, side, amount in p.lines:
            movements[accounts[(code, cur, party)]][0 if side == Side.DEBIT else 1] += amount
    rows = sorted(movements.items())
    cursor.execute(
        f"UPDATE {_ACCOUNT_TABLE} a SET debit_total = a.debit_total + m.debit, "  # noqa: S608
        "credit_total = a.credit_total + m.credit "
        "FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[]) m(id, debit, credit) "
        "WHERE a.id = m.id",
        [[pk for pk, _ in rows], [d for _, (d, _) in rows], [c for _, (_, c) in rows]],
    )


def _entry_instance(
    p: _Prepared, pk: int, created_at: datetime, txid: int, alias: str
) -> JournalEntry:
    spec = p.spec
    values = {
        "id": pk,
        "idempotency_key": spec.idempotency_key,
        "input_hash": p.input_hash,
        "effective_date": spec.effective_date,
        "source_type": spec.source_type,
        "source_id": spec.source_id,
        "description": spec.description,
        "created_at": created_at,
        "reverses_id": spec.reverses_id,
        "created_txid": txid,
    }
    # from_db: the positional fast path of loading a row, as if it were read back.
    return JournalEntry.from_db(alias, _ENTRY_ATTNAMES, [values[name] for name in _ENTRY_ATTNAMES])
