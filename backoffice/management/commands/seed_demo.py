import os
from typing import Any

from django.core.management.base import BaseCommand

from backoffice.demo import demo_seed


class Command(BaseCommand):
    help = "Load the Northwind Media demo business (idempotent) and print the demo logins."

    def handle(self, *args: Any, **options: Any) -> None:
        summary = demo_seed()
        state = "created" if summary.created_catalog else "already present, nothing duplicated"
        counts = ", ".join(f"{n} {what}" for what, n in summary.counts.items())
        self.stdout.write(f"Demo data {state} ({counts}).")
        self.stdout.write("Demo logins:")
        for login in summary.logins:
            self.stdout.write(
                f"  {login.role:<17} {login.username:<20} "
                f"password {login.password:<18} {login.where}"
            )
        self.stdout.write(f"Demo API key (admin scope): {summary.api_key}")
        self.stdout.write(
            f'  try: curl -H "Authorization: Bearer {summary.api_key}" '
            f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/api/v1/plans"
        )
