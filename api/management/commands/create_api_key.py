"""`manage.py create_api_key --name "CRM sync" --scope read --scope write [--partner acme]`.

Prints the key once: only its hash is stored, so it can never be shown again.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.models import ApiKey
from api.services import api_key_create
from core.actors import Actor
from core.errors import ApplicationError
from customers.selectors import partner_get


class Command(BaseCommand):
    help = "Create an API key and print it once (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="What the key is for.")
        parser.add_argument(
            "--scope",
            dest="scopes",
            action="append",
            required=True,
            choices=ApiKey.Scope.values,
            help="read, write or admin; repeat for several (admin includes write and read).",
        )
        parser.add_argument(
            "--partner", metavar="CODE", help="Confine the key to this partner's customers."
        )
        parser.add_argument(
            "--rate-limit",
            type=int,
            metavar="N",
            help="Requests per minute (default: API_DEFAULT_RATE_LIMIT_PER_MINUTE).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        rate_limit = options["rate_limit"]
        if rate_limit is not None and rate_limit < 1:
            raise CommandError("--rate-limit must be at least 1.")
        try:
            partner = partner_get(code=options["partner"]) if options["partner"] else None
            if partner is not None and not partner.active:
                raise CommandError(f"Partner {partner.code} is inactive.")
            key, plaintext = api_key_create(
                name=options["name"],
                scopes=options["scopes"],
                partner=partner,
                rate_limit_per_minute=rate_limit,
                actor=Actor.system("manage.py create_api_key"),
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"Created API key {key.name!r} ({key.prefix}…): scopes {', '.join(key.scopes)}; "
            f"partner {partner.code if partner else '-'}; "
            f"rate limit {key.rate_limit_per_minute or 'default'}/min."
        )
        self.stdout.write(plaintext)
        self.stdout.write(
            self.style.WARNING("Store this key now: it is shown only once and cannot be recovered.")
        )
