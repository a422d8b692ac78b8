from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Func, Q, Value
from django.db.models.lookups import Exact

from catalog.models import PriceList


class Partner(models.Model):
    """A reseller or affiliate that brings and owns customers; its API keys see only those."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    contact_email = models.EmailField(blank=True)
    price_list = models.ForeignKey(
        PriceList, on_delete=models.PROTECT, null=True, blank=True, related_name="partners"
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(code__regex=r"^[a-z0-9]+([-_][a-z0-9]+)*$"), name="partner_code_slug"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Customer(models.Model):
    class Channel(models.TextChoices):
        ORGANIC = "organic", "Organic / direct"
        PAID_SEARCH = "paid_search", "Paid search"
        PAID_SOCIAL = "paid_social", "Paid social"
        EMAIL = "email", "Email"
        REFERRAL = "referral", "Referral"
        AFFILIATE = "affiliate", "Affiliate"
        PARTNER = "partner", "Partner"
        EVENTS = "events", "Events"
        OTHER = "other", "Other"

    external_id = models.CharField(
        max_length=100, unique=True, help_text="The business's own id for this customer."
    )
    email = models.EmailField()
    name = models.CharField(max_length=200)
    currency = models.CharField(
        max_length=3, blank=True, help_text="Billing currency; fixed by the first subscription."
    )
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2")
    region = models.CharField(max_length=6, blank=True, help_text="ISO 3166-2 subdivision")
    postal_code = models.CharField(max_length=20, blank=True)
    tax_id = models.CharField(max_length=50, blank=True)
    segments = ArrayField(models.SlugField(max_length=64), default=list, blank=True)
    acquisition_channel = models.CharField(
        max_length=20, choices=Channel.choices, default=Channel.ORGANIC
    )
    partner = models.ForeignKey(
        Partner, on_delete=models.PROTECT, null=True, blank=True, related_name="customers"
    )
    price_list = models.ForeignKey(
        PriceList,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="customers",
        help_text="Explicit price list; otherwise partner, segment, country, then default.",
    )
    billing_day = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Calendar billing on this day of the month (1-31)."
    )
    autocharge = models.BooleanField(default=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="customer",
        help_text="Portal login.",
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(currency="") | Q(currency__regex=r"^[A-Z]{3}$"),
                name="customer_currency_iso",
            ),
            models.CheckConstraint(
                condition=Q(country="") | Q(country__regex=r"^[A-Z]{2}$"),
                name="customer_country_iso",
            ),
            models.CheckConstraint(
                condition=Q(billing_day__isnull=True) | Q(billing_day__gte=1, billing_day__lte=31),
                name="customer_billing_day_in_month",
            ),
            models.CheckConstraint(
                condition=~Q(external_id=""), name="customer_external_id_not_blank"
            ),
            models.CheckConstraint(condition=~Q(email=""), name="customer_email_not_blank"),
            models.CheckConstraint(condition=~Q(name=""), name="customer_name_not_blank"),
            # ISO 3166-2: a subdivision suffix (CA of US-CA) only means something in a country.
            models.CheckConstraint(
                condition=Q(region="") | (~Q(country="") & Q(region__regex=r"^[A-Z0-9]{1,3}$")),
                name="customer_region_iso",
            ),
            models.CheckConstraint(
                condition=Exact(
                    Func(F("metadata"), function="jsonb_typeof", output_field=models.CharField()),
                    Value("object"),
                ),
                name="customer_metadata_is_object",
            ),
        ]
        indexes = [
            models.Index(fields=["email"]),
            models.Index(fields=["partner", "-id"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


class Interaction(models.Model):
    """One contact with the customer (call, email, chat, note): the customer-service history."""

    class Channel(models.TextChoices):
        PHONE = "phone", "Phone"
        EMAIL = "email", "Email"
        CHAT = "chat", "Chat"
        PORTAL = "portal", "Portal"
        NOTE = "note", "Internal note"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="interactions")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    note = models.TextField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="customer_interactions",
    )
    author_label = models.CharField(max_length=200, blank=True)
    occurred_at = models.DateTimeField()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["customer", "-occurred_at"])]
        constraints = [
            models.CheckConstraint(condition=~Q(note=""), name="interaction_note_not_empty")
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.occurred_at:%Y-%m-%d}: {self.note[:40]}"
