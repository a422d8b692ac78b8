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
from datetime import date

from django.db import DatabaseError, transaction

from core.actors import Actor
from core.errors import ApplicationError
from subscriptions.models import Subscription
from subscriptions.services import state, transitions

logger = logging.getLogger(__name__)
DAILY_ACTOR = Actor.system("subscriptions daily work")


def _families(day: date) -> list[tuple[str, int]]:
    due = (
        Subscription.objects.filter(next_transition_on__lte=day)
        .exclude(status=Subscription.Status.CANCELED)
        .values_list("pk", "parent_id", "group_id", "parent__group_id")
    )
    keys: set[tuple[str, int]] = set()
    for pk, parent_id, group_id, parent_group_id in due:
        group = group_id or parent_group_id
        keys.add(("group", group) if group else ("base", parent_id or pk))
    return sorted(keys, key=lambda key: (key[1], key[0]))


def subscriptions_process_day(day: date) -> dict[str, int]:
    """Run what is due by `day` (phases, renewals, scheduled changes, cancels at period end,
    pause ends, usage periods to close), one family of subscriptions per transaction. A
    family that fails is logged and counted; the others go on."""
    counts: Counter[str] = Counter()
    for kind, key in _families(day):
        try:
            with transaction.atomic():
                members = state.lock_family(
                    [key] if kind == "base" else [], [key] if kind == "group" else []
                )
                outcome = transitions.Outcome()
                for member in members:
                    transitions.advance(member, day, actor=DAILY_ACTOR, outcome=outcome)
                if outcome.lines:
                    first = members[0]
                    state.issue_invoice(
                        customer=first.customer,
                        currency=first.currency,
                        billing_reason=transitions.main_reason(outcome.reasons),
                        lines=outcome.lines,
                        actor=DAILY_ACTOR,
                    )
                    outcome.counts["invoices"] += 1
            counts.update(outcome.counts)
        except (ApplicationError, DatabaseError, RuntimeError):
            logger.exception("subscriptions daily work failed for %s %s on %s", kind, key, day)
            counts["failed"] += 1
    return {name: value for name, value in sorted(counts.items()) if value}
