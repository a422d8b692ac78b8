from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "billing.ledger"
    label = "ledger"
    verbose_name = "Ledger"

    def ready(self) -> None:
        from billing.ledger.recognition import recognition_daily_work
        from core import clock

        clock.register_daily_work("revenue_recognition", recognition_daily_work)
