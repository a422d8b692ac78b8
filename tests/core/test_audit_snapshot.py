"""`audit_snapshot` reads a model's fields through a plan made once per model: what it gives must
be exactly what reading them one by one gave, kept here as the oracle, for every model of the
platform and every kind of value (types included: an enum member stays one, a str stays a str).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps
from django.db import models
from django.db.models.query_utils import DeferredAttribute
from django.test.utils import isolate_apps
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext_lazy

from catalog.models import Feature, Plan, Product
from core.models import TestClock as StoredClock
from core.services import _json_safe, audit_snapshot


def _oracle(instance: models.Model) -> dict[str, Any]:
    """The snapshot as it was taken before the per-model plan."""
    opts = instance._meta
    snapshot = {
        field.name: _oracle_safe(getattr(instance, field.attname)) for field in opts.concrete_fields
    }
    if opts.many_to_many and instance.pk is not None:
        for field in opts.many_to_many:
            snapshot[field.name] = _oracle_safe(field.value_from_object(instance))
    return snapshot


def _oracle_safe(value: Any) -> Any:
    if type(value) in {str, int, bool, type(None)}:
        return value
    if isinstance(value, list | tuple | set):
        return [_oracle_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _oracle_safe(v) for k, v in value.items()}
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, bool | int | str):
        return value
    return str(value)


def _typed(value: Any) -> Any:
    """`value` with every item's exact type beside it, so that equal means identical."""
    if isinstance(value, dict):
        return (dict, [(_typed(k), _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return (list, [_typed(v) for v in value])
    return (type(value), value)


def _outcome(snapshot: Callable[[models.Model], dict[str, Any]], instance: models.Model) -> Any:
    try:
        return _typed(snapshot(instance))
    except AttributeError as exc:  # the same error, too (an unsaved model's generated field)
        return (type(exc), str(exc))


def _assert_same(instance: models.Model) -> None:
    assert _outcome(audit_snapshot, instance) == _outcome(_oracle, instance)


class Colour(models.TextChoices):
    RED = "red", "Red"


class Size(models.IntegerChoices):
    LARGE = 3, "Large"


def _samples(field: models.Field) -> Iterator[Any]:
    """Values a field's attribute may hold: its usual type, None, and odd ones."""
    yield None
    usual: dict[type[models.Field], Any] = {
        models.DecimalField: Decimal("12.50"),
        models.DateTimeField: datetime(2026, 1, 15, 12, 30, 5, 123456, tzinfo=UTC),
        models.DateField: date(2026, 2, 28),
        models.TimeField: time(9, 30),
        models.DurationField: timedelta(days=1, seconds=5),
        models.UUIDField: uuid.UUID("12345678-1234-5678-1234-567812345678"),
        models.BooleanField: True,
        models.JSONField: {"a": [1, Decimal("1.5"), {"b": None}], 2: (3, "x"), "s": {4}},
        models.IntegerField: 7,
        models.CharField: 'text ü "q" \\ \n',
        models.TextField: "long text",
    }
    for kind, value in usual.items():
        if isinstance(field, kind):
            yield value
    if field.is_relation:
        yield 5
    yield Colour.RED
    yield Size.LARGE
    yield gettext_lazy("lazy")
    yield datetime(2026, 1, 15, 12, tzinfo=timezone(timedelta(hours=2)))
    yield [Colour.RED, Decimal("1"), (1, 2)]


def _instances() -> Iterator[models.Model]:
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if isinstance(f, models.Field)]
        instance = model()
        yield instance
        samples = {field.attname: list(_samples(field)) for field in fields}
        for round_ in range(max(len(values) for values in samples.values())):
            instance = model()
            for attname, values in samples.items():
                # Each field cycles through its samples, so a round mixes kinds of value.
                instance.__dict__[attname] = values[(round_ + len(attname)) % len(values)]
            if model._meta.many_to_many:  # unsaved: its relations are read from the database
                instance.pk = None
            yield instance


def test_every_model_and_kind_of_value_gives_the_same_snapshot() -> None:
    count = 0
    for instance in _instances():
        _assert_same(instance)
        count += 1
    assert count > 500


@pytest.mark.django_db
def test_a_deferred_field_is_loaded_as_before(clock: Callable[[datetime], datetime]) -> None:
    deferred = StoredClock.objects.only("id").get(id=1)
    assert "frozen_time" not in deferred.__dict__

    snapshot = audit_snapshot(deferred)

    assert _typed(snapshot) == _typed(_oracle(StoredClock.objects.only("id").get(id=1)))
    assert snapshot["frozen_time"] == "2026-01-15 12:00:00+00:00"


@pytest.mark.django_db
def test_many_to_many_relations_appear_as_ids() -> None:
    now = datetime(2026, 1, 15, tzinfo=UTC)
    product = Product.objects.create(code="p", name="P", created_at=now)
    plan = Plan.objects.create(
        product=product, code="gold", name="Gold", billing_interval="month", created_at=now
    )
    features = [Feature.objects.create(code=f"f{n}", name="F", created_at=now) for n in (1, 2)]
    plan.features.set(features)

    snapshot = audit_snapshot(plan)

    assert sorted(snapshot["features"]) == sorted(f.pk for f in features)
    assert snapshot["addons"] == []
    _assert_same(plan)


class _Shouting(DeferredAttribute):
    """A field attribute that is not Django's own (a data descriptor, so it is read even when
    the instance holds the value): the snapshot must go through it."""

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        value = super().__get__(instance, cls)
        return value.upper() if isinstance(value, str) else value

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.field.attname] = value


class _ShoutingField(models.CharField):
    descriptor_class = _Shouting


@isolate_apps("core")
def test_a_field_with_a_descriptor_of_its_own_is_read_through_it() -> None:
    class Shouted(models.Model):
        name = _ShoutingField(max_length=10)
        size = models.IntegerField()

        class Meta:
            app_label = "core"

        def __str__(self) -> str:
            return self.name

    instance = Shouted(id=1, name="quiet", size=2)

    assert audit_snapshot(instance) == {"id": 1, "name": "QUIET", "size": 2}
    _assert_same(instance)


class _Unhashable(tzinfo):
    """A tzinfo that cannot be a dict key (as dateutil's tzutc)."""

    __hash__ = None  # type: ignore[assignment]

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "UTC"


def test_datetimes_equal_as_instants_keep_their_own_str() -> None:
    # The str of a datetime is remembered: one instant written with other offsets, another
    # fold or an unhashable tzinfo must still read as its own str.
    paris = ZoneInfo("Europe/Paris")
    values = [
        datetime(2026, 1, 15, 12, tzinfo=UTC),
        datetime(2026, 1, 15, 13, tzinfo=timezone(timedelta(hours=1))),
        datetime(2026, 1, 15, 13, tzinfo=paris),
        datetime(2026, 1, 15, 13, tzinfo=timezone(timedelta(hours=1), "CET")),
        datetime(2026, 10, 25, 2, 30, tzinfo=paris),
        datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=paris),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        datetime(2026, 1, 15, 12),  # noqa: DTZ001 - naive, as a field may hold
        datetime(2026, 1, 15, 12, fold=1),  # noqa: DTZ001
        datetime(2026, 1, 15, 12, tzinfo=_Unhashable()),
    ]

    for _ in range(2):
        for value in [*values, *reversed(values)]:
            assert _json_safe(value) == str(value)
            assert _json_safe([value]) == [str(value)]


def test_a_value_that_lies_about_its_class_is_judged_each_time() -> None:
    # Enum members' types are remembered as going as they are; a lazy object's is not, for the
    # next one may wrap something else.
    text = SimpleLazyObject(lambda: "text")
    amount = SimpleLazyObject(lambda: Decimal("1.50"))

    assert _json_safe(Colour.RED) is Colour.RED
    assert _json_safe(Colour.RED) is Colour.RED
    assert _json_safe(text) is text
    assert _json_safe(amount) == "1.50"
