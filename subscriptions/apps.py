from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"

    def ready(self) -> None:
        from core.clock import register_daily_work
        from subscriptions.services.daily import subscriptions_process_day

        register_daily_work("subscriptions", subscriptions_process_day)

        from subscriptions.dunning import register as register_dunning

        register_dunning()  # after the lifecycle's work: a renewal declined today is dunned today

        from subscriptions.notices import register as register_notices

        register_notices()  # after the lifecycle's work: the notices see the day's changes
