from __future__ import annotations

from enum import Enum
from typing import Final


class Unset(Enum):
    """The type of UNSET: an argument that was not given (distinct from None, which clears)."""

    token = 0

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.token
"""Default of the optional arguments of `*_update` services: leave the field as it is."""
