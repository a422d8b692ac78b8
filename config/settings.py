"""Settings, all read from the environment (12-factor).

`DEBUG=false` is production: a real SECRET_KEY is required and cookies are secure. The dev runner
(`python -m config.dev`) fills in DATABASE_URL / REDIS_URL with embedded servers when unset.
"""

from pathlib import Path
from urllib.parse import unquote

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
TEST_MODE = env.bool("TEST_MODE", default=False)

_INSECURE_KEY_PREFIX = "django-insecure-"
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (production).")
    SECRET_KEY = _INSECURE_KEY_PREFIX + "development-only-key-never-use-in-production"
elif not DEBUG and (
    # The same bar as Django's security.W009, so `check --deploy` never flags a key we accept.
    SECRET_KEY.startswith(_INSECURE_KEY_PREFIX) or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5
):
    raise ImproperlyConfigured(
        "SECRET_KEY is too weak for production: use at least 50 random characters, e.g. "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "djmoney",
    "django_celery_beat",
    "core",
    "core.webhooks",
    "core.notifications",
    "catalog",
    "customers",
    "billing",
    "billing.ledger",
    "subscriptions",
    "retention",
    "analytics",
    "portal",
    "backoffice",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if "DATABASE_URL" not in env.ENVIRON:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Use `make run` / `make test`, or `python -m config.dev exec -- "
        "<command>`, which start an embedded PostgreSQL when no DATABASE_URL is given."
    )
DATABASES = {"default": env.db_url("DATABASE_URL")}
# A unix-socket directory arrives percent-encoded in the URL host (postgres://u@%2Fpath/db).
DATABASES["default"]["HOST"] = unquote(str(DATABASES["default"].get("HOST", "")))
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("Only PostgreSQL is supported (DATABASE_URL=postgres://...).")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="subs"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / ".data" / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

LOGIN_URL = "admin:login"
# The admin's messages survive redirects in the session (cookie storage drops long messages).
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="billing@example.com")

# --- Invoicing --------------------------------------------------------------------------------
# Days between an invoice's issue and its due date (0: due on receipt).
INVOICE_DUE_DAYS = env.int("INVOICE_DUE_DAYS", default=0)
if INVOICE_DUE_DAYS < 0:
    raise ImproperlyConfigured("INVOICE_DUE_DAYS is a number of days, 0 or more.")
# The seller printed on invoices and credit notes; the address may span lines ("\n").
INVOICE_ISSUER_NAME = env.str("INVOICE_ISSUER_NAME", default="Subscription Platform")
INVOICE_ISSUER_ADDRESS = env.str(
    "INVOICE_ISSUER_ADDRESS", default="1 Billing Street\n10001 New York, NY\nUnited States"
).replace("\\n", "\n")

# --- Payments ---------------------------------------------------------------------------------
# The gateway new payment methods are saved with: "simulated" (built in: test card numbers, for
# demo and embedded mode) or "stripe". Saved methods keep the gateway they were saved with.
PAYMENT_GATEWAY = env.str("PAYMENT_GATEWAY", default="simulated")
if PAYMENT_GATEWAY not in ("simulated", "stripe"):
    raise ImproperlyConfigured('PAYMENT_GATEWAY is "simulated" or "stripe".')
# Network retries of one Stripe request (the client reuses the idempotency key for them).
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
# A payment attempt still pending this long after its claim (wall clock) was left by a worker
# that died mid-charge: the sweeper settles it. Longer than any gateway call can take (Stripe's
# client waits up to 80 s a try, STRIPE_MAX_NETWORK_RETRIES more times).
PAYMENT_ATTEMPT_STALE_MINUTES = env.int("PAYMENT_ATTEMPT_STALE_MINUTES", default=15)
if PAYMENT_ATTEMPT_STALE_MINUTES < 5:
    raise ImproperlyConfigured("PAYMENT_ATTEMPT_STALE_MINUTES is at least 5.")

# Production hardening: DEBUG off means TLS in front of us.
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.IdCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "COERCE_DECIMAL_TO_STRING": True,
    "DATETIME_FORMAT": "iso-8601",
    "UNAUTHENTICATED_USER": None,
}
API_DEFAULT_RATE_LIMIT_PER_MINUTE = env.int("API_DEFAULT_RATE_LIMIT_PER_MINUTE", default=600)
API_IDEMPOTENCY_TTL_HOURS = env.int("API_IDEMPOTENCY_TTL_HOURS", default=24)

SPECTACULAR_SETTINGS = {
    "TITLE": "Subscription platform API",
    "DESCRIPTION": (
        "Partner REST API: catalog, customers, subscriptions, billing. Authenticate with "
        "`Authorization: Bearer <api key>`. Every POST accepts an `Idempotency-Key` header."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "IntervalUnitEnum": "catalog.models.INTERVAL_CHOICES",
        "ProductKindEnum": "catalog.models.Product.Kind",
        "PhaseKindEnum": "catalog.models.PlanPhase.Kind",
        "PriceListKindEnum": "catalog.models.PriceList.Kind",
        "BundlePricingEnum": "catalog.models.Bundle.Pricing",
        "MeteredPricingEnum": "catalog.models.PlanMeter.Pricing",
        "WebhookEndpointStatusEnum": "core.webhooks.models.WebhookEndpoint.Status",
        "WebhookDeliveryStatusEnum": "core.webhooks.models.WebhookDelivery.Status",
        "NotificationStatusEnum": "core.notifications.models.Notification.Status",
        "DunningOutcomeEnum": "subscriptions.models.DunningCase.Outcome",
        "CreditNoteOutcomeEnum": "billing.models.CreditNote.Outcome",
        "EventTypeEnum": "core.webhooks.events.EVENT_TYPE_CHOICES",
        "RefundReasonEnum": "billing.models.Refund.Reason",
        "CreditNoteReasonEnum": "billing.models.CreditNote.Reason",
    },
}

# --- Subscriptions ----------------------------------------------------------------------------
# The longest pause, in billing intervals of the subscription's plan.
SUBSCRIPTION_MAX_PAUSE_CYCLES = env.int("SUBSCRIPTION_MAX_PAUSE_CYCLES", default=3)

# --- Webhooks ---------------------------------------------------------------------------------
# Connect and read timeout of one delivery attempt.
WEBHOOK_TIMEOUT_SECONDS = env.int("WEBHOOK_TIMEOUT_SECONDS", default=10)
# Seconds to wait before each retry of a failed delivery (1m, 5m, 30m, 2h, 12h, 24h); once all
# are used up the delivery is abandoned.
WEBHOOK_RETRY_SCHEDULE = [
    int(seconds)
    for seconds in env.list("WEBHOOK_RETRY_SCHEDULE", default=[60, 300, 1800, 7200, 43200, 86400])
]
# An endpoint is disabled when it has failed this many attempts in a row AND has not answered
# 2xx for this many hours: a busy endpoint's short outage never disables it, a dead one does.
WEBHOOK_DISABLE_AFTER_FAILURES = env.int("WEBHOOK_DISABLE_AFTER_FAILURES", default=50)
WEBHOOK_DISABLE_AFTER_HOURS = env.int("WEBHOOK_DISABLE_AFTER_HOURS", default=72)
# Who is told when an endpoint is disabled (besides a partner endpoint's partner contact).
WEBHOOK_ALERT_EMAILS = env.list("WEBHOOK_ALERT_EMAILS", default=[])
# A queued delivery whose task has not run after this long is queued again (lost task).
WEBHOOK_REDISPATCH_AFTER_SECONDS = env.int("WEBHOOK_REDISPATCH_AFTER_SECONDS", default=300)
# A webhook URL that is (or resolves to) a private, loopback, link-local or otherwise non-public
# address would let a partner reach inside the network the platform runs in (SSRF): refused,
# at registration and again before each request, unless allowed (development, the test clock).
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool(
    "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=DEBUG or TEST_MODE
)
# Outbox events (and their deliveries and attempts) older than this are pruned daily, once no
# delivery of theirs is still waiting.
WEBHOOK_EVENT_RETENTION_DAYS = env.int("WEBHOOK_EVENT_RETENTION_DAYS", default=90)
if WEBHOOK_EVENT_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("WEBHOOK_EVENT_RETENTION_DAYS is at least 1.")
if WEBHOOK_TIMEOUT_SECONDS < 1 or any(seconds < 0 for seconds in WEBHOOK_RETRY_SCHEDULE):
    raise ImproperlyConfigured(
        "WEBHOOK_TIMEOUT_SECONDS is at least 1; WEBHOOK_RETRY_SCHEDULE lists seconds, 0 or more."
    )

# --- Notices and the notification log --------------------------------------------------------
# The customer portal that every notice links to (its pages live under /portal/).
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
# Days before a renewal that its notice goes out, by billing interval (0: no notice). An interval
# of several units counts as the longest unit it reaches (6 months: "quarter"; 2 years: "year").
# A plan's metadata {"renewal_notice_days": N} overrides this for that plan. The environment
# gives a JSON object of the units to change: RENEWAL_NOTICE_DAYS='{"month": 3}'.
_RENEWAL_NOTICE_UNITS = ("year", "quarter", "month", "week", "day")
_renewal_notice_overrides = env.json("RENEWAL_NOTICE_DAYS", default={})
if not isinstance(_renewal_notice_overrides, dict) or not all(
    unit in _RENEWAL_NOTICE_UNITS and type(days) is int and days >= 0
    for unit, days in _renewal_notice_overrides.items()
):
    raise ImproperlyConfigured(
        'RENEWAL_NOTICE_DAYS is a JSON object of "year", "quarter", "month", "week" or "day" '
        'to a number of days (0 or more), for example {"year": 45}.'
    )
RENEWAL_NOTICE_DAYS = {"year": 30, "quarter": 7, "month": 0, "week": 0, "day": 0}
RENEWAL_NOTICE_DAYS.update(_renewal_notice_overrides)
# Days before a trial ends that its notice goes out; trials longer than 31 days use
# LONG_TRIAL_NOTICE_DAYS (3 to 21). A plan's metadata {"trial_ending_notice_days": N} overrides.
TRIAL_ENDING_NOTICE_DAYS = env.int("TRIAL_ENDING_NOTICE_DAYS", default=3)
LONG_TRIAL_NOTICE_DAYS = env.int("LONG_TRIAL_NOTICE_DAYS", default=7)
# Days before a renewal that brings a new price (an intro price ending, a plan or quantity
# change scheduled for the period end) that the price-change notice goes out.
PRICE_CHANGE_NOTICE_DAYS = env.int("PRICE_CHANGE_NOTICE_DAYS", default=30)
# Seconds to wait before each new attempt of an email the mail server did not take (5m, 30m,
# 2h, 12h, 24h); once all are used up the notification is marked failed.
NOTIFICATION_RETRY_SCHEDULE = [
    int(seconds)
    for seconds in env.list("NOTIFICATION_RETRY_SCHEDULE", default=[300, 1800, 7200, 43200, 86400])
]
# A notification being sent whose outcome was never recorded (the sender died mid-send) is
# sent again once this lease has run out (wall clock).
NOTIFICATION_SEND_LEASE_SECONDS = env.int("NOTIFICATION_SEND_LEASE_SECONDS", default=600)
if TRIAL_ENDING_NOTICE_DAYS < 0 or PRICE_CHANGE_NOTICE_DAYS < 0:
    raise ImproperlyConfigured("Notice days are 0 or more (0: no notice).")
if not 3 <= LONG_TRIAL_NOTICE_DAYS <= 21:
    raise ImproperlyConfigured("LONG_TRIAL_NOTICE_DAYS is 3 to 21 days.")
if NOTIFICATION_SEND_LEASE_SECONDS < 60 or any(s < 0 for s in NOTIFICATION_RETRY_SCHEDULE):
    raise ImproperlyConfigured(
        "NOTIFICATION_SEND_LEASE_SECONDS is at least 60; NOTIFICATION_RETRY_SCHEDULE lists "
        "seconds, 0 or more."
    )

# --- Dunning (docs/dunning.md) ----------------------------------------------------------------
# Every day counts from the first failed charge of the invoice (day 0). Retries go out that many
# days after it (a hard decline is never retried: it waits for a new payment method); the
# subscriptions on the invoice turn "warning", then "blocked" (no entitlements), and on the final
# day the final action is taken: "cancel" (the subscriptions end at once, reason "unpaid") or
# "leave_unpaid" (the invoice is written off as uncollectible and the subscriptions go on).
DUNNING_RETRY_DAYS = [int(days) for days in env.list("DUNNING_RETRY_DAYS", default=[1, 3, 5, 7])]
DUNNING_WARNING_AFTER_DAYS = env.int("DUNNING_WARNING_AFTER_DAYS", default=3)
DUNNING_BLOCK_AFTER_DAYS = env.int("DUNNING_BLOCK_AFTER_DAYS", default=7)
DUNNING_FINAL_ACTION_AFTER_DAYS = env.int("DUNNING_FINAL_ACTION_AFTER_DAYS", default=14)
DUNNING_FINAL_ACTION = env.str("DUNNING_FINAL_ACTION", default="cancel")
_increasing = sorted(set(DUNNING_RETRY_DAYS))
if _increasing != DUNNING_RETRY_DAYS or any(days < 1 for days in DUNNING_RETRY_DAYS):
    raise ImproperlyConfigured("DUNNING_RETRY_DAYS lists increasing days, 1 or more.")
if not (
    0 < DUNNING_WARNING_AFTER_DAYS <= DUNNING_BLOCK_AFTER_DAYS <= DUNNING_FINAL_ACTION_AFTER_DAYS
):
    raise ImproperlyConfigured(
        "Dunning days: 0 < DUNNING_WARNING_AFTER_DAYS <= DUNNING_BLOCK_AFTER_DAYS <= "
        "DUNNING_FINAL_ACTION_AFTER_DAYS."
    )
if DUNNING_FINAL_ACTION not in ("cancel", "leave_unpaid"):
    raise ImproperlyConfigured('DUNNING_FINAL_ACTION is "cancel" or "leave_unpaid".')

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
