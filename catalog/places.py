"""Countries (ISO 3166-1 alpha-2) and their subdivisions (ISO 3166-2), as tax rates and price
lists name them.

The country list is CLDR's territory list (shipped with babel, which py-moneyed depends on),
minus the codes ISO 3166-1 only reserves (EU, UN, XK, AC, ...), which leaves exactly the 249
officially assigned codes. Subdivisions are checked by shape only: one to three letters or
digits after the country (US-CA is stored as country US, region CA), because no subdivision
table ships with the platform's dependencies.
"""

from __future__ import annotations

import re
from functools import lru_cache

from babel import Locale

from core.errors import ValidationError

# In CLDR but not officially assigned in ISO 3166-1: exceptionally or transitionally reserved
# codes (AC, CP, DG, EA, IC, TA, EU, EZ, UN, CQ) and user-assigned ones (QO, XA, XB, XK, ZZ).
_NOT_ISO_3166_1 = frozenset(
    {"AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "QO", "TA", "UN", "XA", "XB", "XK", "ZZ"}
)
_COUNTRY_SHAPE = re.compile(r"^[A-Z]{2}$")
_SUBDIVISION_SHAPE = re.compile(r"^[A-Z0-9]{1,3}$")


@lru_cache(maxsize=1)
def country_codes() -> frozenset[str]:
    territories = [str(code) for code in Locale("en").territories]
    return frozenset(
        code for code in territories if _COUNTRY_SHAPE.match(code) and code not in _NOT_ISO_3166_1
    )


def normalize_country(country: str, *, param: str = "country") -> str:
    code = (country or "").strip().upper()
    if code not in country_codes():
        raise ValidationError(
            f"{country!r} is not an ISO 3166-1 alpha-2 country code (such as US or DE).",
            code="invalid_country",
            param=param,
        )
    return code


def normalize_region(region: str, *, country: str, param: str = "region") -> str:
    """The subdivision part of an ISO 3166-2 code: "US-CA" or "CA" for California -> "CA"."""
    code = (region or "").strip().upper()
    if not code:
        return ""
    prefix, dash, rest = code.partition("-")
    if dash:
        if prefix != country:
            raise ValidationError(
                f"Region {region!r} is not a subdivision of {country}.",
                code="invalid_region",
                param=param,
            )
        code = rest
    if not _SUBDIVISION_SHAPE.match(code):
        raise ValidationError(
            f"{region!r} is not an ISO 3166-2 subdivision code (such as US-CA or CA).",
            code="invalid_region",
            param=param,
        )
    return code
