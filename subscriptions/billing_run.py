"""The billing run: everything due, spread over the workers in chunks.

A run records what is due by a day (the same families the test clock's daily work processes),
cuts them into chunks and queues one task per chunk once the run is committed. Each chunk is
processed by `families_process`, which the daily work uses too: the plain renewals of the chunk
in one bulk transaction, every other family in its own (`family_process`). Either way the rows
are locked and re-read, and the billing high-water mark (`billed_through`,
`next_transition_on`) moves under the lock. So a family is billed once however many runs or
deliveries of a chunk reach it, and a run interrupted anywhere and started again bills what is
left and nothing twice.

Counters: a chunk's families count as processed when the chunk finishes, once (the chunk row
is marked done under a lock), so `processed` never exceeds `due` even when a chunk's task is
delivered again after a worker died; invoices and failures count what the finishing delivery
did. A failed family gets a BillingRunFailure row and stays due for the next run.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date

from django.db import transaction
from django.db.models import F, QuerySet

from core import clock
from core.actors import Actor
from core.errors import NotFoundError, ValidationError
from core.services import audit_record, audit_snapshot
from subscriptions.models import BillingRun, BillingRunChunk, BillingRunFailure
from subscriptions.services.daily import Family, due_families, families_process

logger = logging.getLogger(__name__)
BILLING_RUN_ACTOR = Actor.system("billing run")
DEFAULT_CHUNK_SIZE = 500
MAX_CHUNK_SIZE = 10_000


def billing_run_start(
    *, as_of: date | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE, actor: Actor
) -> BillingRun:
    """Record a run over every family due by `as_of` (today by default) and queue its chunks
    after commit. A run with nothing due is finished at once."""
    size = chunk_size
    if not 1 <= size <= MAX_CHUNK_SIZE:
        raise ValidationError(
            f"chunk_size is 1 to {MAX_CHUNK_SIZE}.", code="invalid_chunk_size", param="chunk_size"
        )
    day = as_of or clock.today()
    if day > clock.today():
        raise ValidationError(
            "A billing run cannot bill ahead of today.", code="as_of_in_future", param="as_of"
        )
    with transaction.atomic():
        families = due_families(day)
        chunks = [families[i : i + size] for i in range(0, len(families), size)]
        now = clock.now()
        run = BillingRun.objects.create(
            as_of=day,
            actor_label=actor.label[:200],
            chunk_size=size,
            due=len(families),
            chunks_total=len(chunks),
            started_at=now,
            status=BillingRun.Status.RUNNING if chunks else BillingRun.Status.SUCCEEDED,
            finished_at=None if chunks else now,
        )
        created = BillingRunChunk.objects.bulk_create(
            BillingRunChunk(run=run, number=number, families=[list(f) for f in chunk])
            for number, chunk in enumerate(chunks, start=1)
        )
        audit_record(
            actor=actor, action="billing_run.start", instance=run, after=audit_snapshot(run)
        )
        for chunk in created:
            transaction.on_commit(_enqueuer(run.pk, chunk.pk))
    return run


def _enqueuer(run_id: int, chunk_id: int) -> Callable[[], None]:
    def enqueue() -> None:
        from subscriptions.tasks import billing_run_chunk

        billing_run_chunk.delay(run_id, chunk_id)

    return enqueue


def billing_run_process_chunk(*, run_id: int, chunk_id: int) -> BillingRun:
    """Process the families of one chunk (`families_process`); a failing family is recorded and
    the others go on. A chunk already done does nothing (a redelivered task)."""
    chunk = BillingRunChunk.objects.select_related("run").filter(pk=chunk_id, run_id=run_id).first()
    if chunk is None:
        raise NotFoundError(f"No chunk {chunk_id} in run {run_id}.", code="billing_run_not_found")
    if chunk.status == BillingRunChunk.Status.DONE:
        return chunk.run
    families: list[Family] = [(str(kind), int(key)) for kind, key in chunk.families]
    counts = _process_families(chunk.run, families)
    return _finish_chunk(chunk, counts)


def _process_families(run: BillingRun, families: Sequence[Family]) -> Counter[str]:
    def record_failure(family: Family, error: Exception) -> None:
        kind, key = family
        BillingRunFailure.objects.create(
            run=run,
            family_kind=kind,
            family_key=key,
            subscription_id=key if kind == "base" else None,
            error_type=type(error).__name__[:100],
            error=str(error)[:2000],
            created_at=clock.now(),
        )

    return families_process(families, run.as_of, actor=BILLING_RUN_ACTOR, on_failure=record_failure)


def _finish_chunk(chunk: BillingRunChunk, counts: Counter[str]) -> BillingRun:
    with transaction.atomic():
        marked = BillingRunChunk.objects.filter(
            pk=chunk.pk, status=BillingRunChunk.Status.PENDING
        ).update(
            status=BillingRunChunk.Status.DONE,
            counts=dict(sorted(counts.items())),
            finished_at=clock.now(),
        )
        if not marked:  # another delivery of this chunk finished first
            return BillingRun.objects.get(pk=chunk.run_id)
        BillingRun.objects.filter(pk=chunk.run_id).update(
            processed=F("processed") + len(chunk.families),
            invoices=F("invoices") + counts["invoices"],
            failed=F("failed") + counts["failed"],
            chunks_done=F("chunks_done") + 1,
        )
        run = BillingRun.objects.select_for_update().get(pk=chunk.run_id)
        merged = Counter(run.counts)
        merged.update(counts)
        run.counts = {name: value for name, value in sorted(merged.items()) if value}
        fields = ["counts"]
        if run.chunks_done == run.chunks_total:
            if run.failed and run.failed >= run.due:
                run.status = BillingRun.Status.FAILED
            elif run.failed:
                run.status = BillingRun.Status.COMPLETED_WITH_FAILURES
            else:
                run.status = BillingRun.Status.SUCCEEDED
            run.finished_at = clock.now()
            fields += ["status", "finished_at"]
        run.save(update_fields=fields)
    return run


def billing_run_scheduled(*, actor: Actor = BILLING_RUN_ACTOR) -> BillingRun:
    """The scheduled run: everything due today. Runs overlapping an unfinished one are safe
    (each family is locked and re-read), so a stalled run never blocks the next."""
    return billing_run_start(actor=actor)


# --- reads ------------------------------------------------------------------------------------


def billing_run_list() -> QuerySet[BillingRun]:
    return BillingRun.objects.order_by("-id")


def billing_run_get(*, run_id: int) -> BillingRun:
    run = BillingRun.objects.filter(pk=run_id).first()
    if run is None:
        raise NotFoundError(
            f"No such billing run: {run_id}.", code="billing_run_not_found", param="id"
        )
    return run
