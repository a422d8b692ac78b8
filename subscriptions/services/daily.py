"""The daily work: everything that falls due on a day, for every subscription.

Registered with core.clock, so the scheduled task and the test clock's advance run it. A
base subscription and its add-ons, or a bundle's group, are one unit of work: one transaction
that locks them all, re-reads their state under the lock and puts what they owe that day on
one invoice. Running a day twice, or twice at the same moment, bills once: the second run
waits for the lock, then finds nothing due.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date

from django.db import DatabaseError, transaction

from core.actors import Actor
from core.errors import ApplicationError
from subscriptions.models import Subscription
from subscriptions.services import renewals, state, transitions

logger = logging.getLogger(__name__)
DAILY_ACTOR = Actor.system("subscriptions daily work")


Family = tuple[str, int]  # ("base", base subscription id) or ("group", group id)


def due_families(day: date) -> list[Family]:
    """The families with something due by `day`, in a stable order (the key, then the kind)."""
    due = (
        Subscription.objects.filter(next_transition_on__lte=day)
        .exclude(status=Subscription.Status.CANCELED)
        .values_list("pk", "parent_id", "group_id", "parent__group_id")
    )
    keys: set[Family] = set()
    for pk, parent_id, group_id, parent_group_id in due:
        group = group_id or parent_group_id
        keys.add(("group", group) if group else ("base", parent_id or pk))
    return sorted(keys, key=lambda key: (key[1], key[0]))


def family_process(kind: str, key: int, day: date, *, actor: Actor = DAILY_ACTOR) -> Counter[str]:
    """Everything due by `day` for one family, in one transaction: lock the members, move each
    forward, put what they owe on one invoice. Nothing due any more (done by another run, or
    twice at once) does nothing: the members are re-read under the lock. Raises on failure;
    the transaction is then rolled back and the family stays due."""
    with transaction.atomic():
        members = state.lock_family(
            [key] if kind == "base" else [], [key] if kind == "group" else []
        )
        outcome = transitions.Outcome()
        for member in members:
            transitions.advance(member, day, actor=actor, outcome=outcome)
        if outcome.lines:
            first = members[0]
            state.issue_invoice(
                customer=first.customer,
                currency=first.currency,
                billing_reason=transitions.main_reason(outcome.reasons),
                lines=outcome.lines,
                actor=actor,
            )
            outcome.counts["invoices"] += 1
    return outcome.counts


# A family that fails with one of these is logged, counted and left due; anything else is a bug
# that stops the run loudly.
FAMILY_ERRORS = (ApplicationError, DatabaseError, RuntimeError)
# Families per bulk transaction when the day's work runs in one process (the test clock).
CHUNK_SIZE = 500

FailureHandler = Callable[[Family, Exception], None]


def families_process(
    families: Sequence[Family], day: date, *, actor: Actor, on_failure: FailureHandler
) -> Counter[str]:
    """Everything due by `day` for `families`: the plain renewals among them in one bulk
    transaction (`renewals.renewals_process`), every other family with `family_process`. A
    family that fails is handed to `on_failure`, counted and left due; the others go on. A
    failed bulk transaction leaves all of its families to `family_process`."""
    counts: Counter[str] = Counter()
    try:
        renewed = renewals.renewals_process(
            [key for kind, key in families if kind == "base"], day, actor=actor
        )
    except FAMILY_ERRORS:
        logger.exception("bulk renewal failed on %s; renewing family by family", day)
        renewed = set()
    counts["renewed"] += len(renewed)
    counts["invoices"] += len(renewed)
    for kind, key in families:
        if kind == "base" and key in renewed:
            continue
        try:
            counts.update(family_process(kind, key, day, actor=actor))
        except FAMILY_ERRORS as error:
            logger.exception("subscriptions daily work failed for %s %s on %s", kind, key, day)
            counts["failed"] += 1
            on_failure((kind, key), error)
    return counts


def subscriptions_process_day(day: date) -> dict[str, int]:
    """Run what is due by `day` (phases, renewals, scheduled changes, cancels at period end,
    pause ends, usage periods to close), in chunks of families (`families_process`). The
    billing run does the same per chunk, spread over the workers."""
    counts: Counter[str] = Counter()
    due = due_families(day)
    for start in range(0, len(due), CHUNK_SIZE):
        counts.update(
            families_process(
                due[start : start + CHUNK_SIZE],
                day,
                actor=DAILY_ACTOR,
                on_failure=lambda family, error: None,  # logged and counted above
            )
        )
    return {name: value for name, value in sorted(counts.items()) if value}
