"""The README's webhooks section stays true: its verification snippet is the one the tests run,
and it lists every event type of the catalogue."""

from __future__ import annotations

import re
from pathlib import Path

from core.webhooks.events import EventType

DOCS = Path(__file__).resolve().parents[2] / "README.md"
VERIFIER = Path(__file__).resolve().parent / "verification.py"


def test_the_documented_verification_snippet_is_the_tested_one() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    tested = "".join(
        line for line in VERIFIER.read_text().splitlines(keepends=True) if not line.startswith("#")
    )

    assert tested.strip() in [block.strip() for block in blocks]


def test_every_event_type_is_documented_with_its_description() -> None:
    text = DOCS.read_text()

    for event_type in EventType:
        assert f"| `{event_type.value}` | {event_type.label} |" in text
