"""`manage.py ledger_reconcile`: check the ledger against invoices, payments and balances.

Exits 0 when everything reconciles, 1 when anything does not (each difference is printed), so
a cron job or CI can alert on it.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from billing.selectors import ledger_reconciliation


class Command(BaseCommand):
    help = "Check the ledger against invoices, payments, refunds and customer balances."

    def handle(self, *args: Any, **options: Any) -> None:
        result = ledger_reconciliation()
        checked = ", ".join(f"{check} {count}" for check, count in sorted(result.checked.items()))
        if result.ok:
            self.stdout.write(self.style.SUCCESS(f"The ledger reconciles ({checked})."))
            return
        for mismatch in result.mismatches:
            where = " ".join(part for part in (mismatch.currency, mismatch.party) if part)
            if mismatch.detail:
                self.stderr.write(f"{mismatch.check}: {mismatch.detail}")
            else:
                self.stderr.write(
                    f"{mismatch.check} {where}: ledger {mismatch.ledger}, expected "
                    f"{mismatch.expected} (difference {mismatch.difference})"
                )
        raise CommandError(
            f"The ledger does not reconcile: {len(result.mismatches)} difference(s)."
        )
