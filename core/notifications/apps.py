from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "core.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from core.clock import register_daily_work
        from core.notifications.services import notifications_send_due_daily

        # Each day of the test clock retries what the mail server refused (in production the
        # periodic task does it every few minutes as well).
        register_daily_work("notifications", notifications_send_due_daily)
