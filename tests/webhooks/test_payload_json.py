"""An event's payload is encoded once, by orjson with DjangoJSONEncoder's own `default`: the
stored payload, the returned one and the errors must be what the json round trip gave (kept
here as the oracle), whatever the payload holds."""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy

from core.errors import ValidationError
from core.webhooks.events import EventType
from core.webhooks.models import OutboxEvent
from core.webhooks.services import EventSpec, event_emit, event_emit_bulk

pytestmark = pytest.mark.django_db


def _oracle(payload: Any) -> Any:
    """The payload as `_clean_payload` made it before: a json round trip."""
    return json.loads(json.dumps(dict(payload), cls=DjangoJSONEncoder))


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        return (dict, [(_typed(k), _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return (list, [_typed(v) for v in value])
    return (type(value), value)


class Colour(str):
    def __str__(self) -> str:
        return "not what json writes"


PAYLOADS: dict[str, Any] = {
    "plain": {"id": 7, "name": "Acme ü 😀", "ok": True, "none": None, "ratio": 0.1 + 0.2},
    "decimals": {"amount": Decimal("19.90"), "tiny": Decimal("1E-7"), "big": Decimal("1e30")},
    "datetimes": {
        "utc": datetime(2026, 1, 15, 12, 0, 1, 123456, tzinfo=UTC),
        "whole": datetime(2026, 1, 15, 12, tzinfo=UTC),
        "paris": datetime(2026, 1, 15, 12, 0, 0, 999999, tzinfo=timezone(timedelta(hours=1))),
        "naive": datetime(2026, 1, 15, 12, 0, 0, 500),  # noqa: DTZ001 - DjangoJSONEncoder takes it
        "day": date(2026, 2, 28),
        "time": time(9, 30, 15, 250000),
        "duration": timedelta(days=-1, seconds=5, microseconds=7),
    },
    "others": {
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "lazy": gettext_lazy("Invoice"),
        "safe": mark_safe("<b>x</b>"),  # a str subclass
        "subclass": Colour("red"),
        "choice": EventType.INVOICE_PAID,
        "tuple": (1, (2, 3)),
        "ordered": OrderedDict([("b", 1), ("a", 2)]),
        "nested": [{"amount": Decimal("0.10"), "lines": [[date(2026, 1, 1)]]}],
        "escapes": 'quote " backslash \\ tab \t newline \n \u2028 \x01',
        "e": 1e16,
        "negative_zero": -0.0,
    },
    # What orjson refuses and json takes.
    "big_int": {"n": 2**70, "m": -(2**64)},
    "int_keys": {1: "one", "1.5": 2, 2.5: "float key", False: "bool key", None: "none key"},
    "deep": {"d": json.loads("[" * 300 + "]" * 300)},
}


@pytest.mark.parametrize("name", PAYLOADS)
def test_a_payload_is_stored_and_returned_as_the_json_round_trip_made_it(name: str) -> None:
    payload = PAYLOADS[name]
    expected = _oracle(payload)

    event = event_emit(type=EventType.INVOICE_PAID, payload=payload, customer_id=3)
    (pk,) = event_emit_bulk(events=[EventSpec(type=EventType.INVOICE_PAID, payload=payload)])

    assert _typed(event.payload) == _typed(expected)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT payload::text, %s::jsonb::text FROM webhooks_outboxevent WHERE id = %s",
            [json.dumps(expected), event.pk],
        )
        stored, oracle = cursor.fetchone()
    assert stored == oracle
    assert OutboxEvent.objects.get(pk=pk).payload == OutboxEvent.objects.get(pk=event.pk).payload


def test_a_mapping_that_is_not_a_dict_is_taken_as_one() -> None:
    payload = MappingProxyType({"a": Decimal("1.5")})

    event = event_emit(type=EventType.INVOICE_PAID, payload=payload)

    assert event.payload == {"a": "1.5"}


@dataclass
class Point:
    x: int


class _Loop(dict):
    pass


_LOOP = _Loop()
_LOOP["self"] = _LOOP


@pytest.mark.parametrize(
    "payload",
    [
        {"x": object()},
        {"x": {1, 2}},
        {"x": b"bytes"},
        {"x": Point(1)},
        {"t": time(9, 30, tzinfo=UTC)},
        {(1, 2): "tuple key"},
        _LOOP,
    ],
    ids=["object", "set", "bytes", "dataclass", "aware_time", "tuple_key", "loop"],
)
def test_what_json_refused_is_refused_with_its_words(payload: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)) as oracle:
        _oracle(payload)

    with pytest.raises(ValidationError) as refused:
        event_emit(type=EventType.INVOICE_PAID, payload=payload)

    assert refused.value.code == "invalid_payload"
    assert str(refused.value) == f"An event's payload must be JSON: {oracle.value}."
    assert not OutboxEvent.objects.exists()


def test_bulk_event_ids_are_uuid4s() -> None:
    ids = event_emit_bulk(
        events=[EventSpec(type=EventType.INVOICE_PAID, payload={"n": n}) for n in range(50)]
    )

    public_ids = [event.public_id for event in OutboxEvent.objects.filter(pk__in=ids)]
    assert len(set(public_ids)) == 50
    for public_id in public_ids:
        value = uuid.UUID(public_id.removeprefix("evt_"))
        assert (value.version, value.variant) == (4, uuid.RFC_4122)
        assert value.hex == public_id.removeprefix("evt_")
