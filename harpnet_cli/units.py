"""Units of precipitation amounts: the spellings accepted, and their factor to mm (= kg m-2).

The rule is strict on purpose: a unit string is compared **as written** (case-sensitive, as
UDUNITS reads it), after only dropping surrounding blanks and collapsing inner ones. ``"M"``
(mega-, or a typo) is not ``"m"``; ``"MM"`` is not ``"mm"``; an unknown spelling is refused,
never guessed, because a wrong factor of 1000 gives a confident, wrong forecast.

Accepted (the UDUNITS spellings of these units): millimetres (``mm``, ``millimeter(s)``,
``millimetre(s)``), metres of water (``m``, ``meter(s)``, ``metre(s)``), inches (``in``,
``inch``, ``inches``) and kilograms per square metre (``kg m-2`` and its usual spellings
``kg m**-2``, ``kg m^-2``, ``kg.m-2``, ``kg/m2``, ``kg/m^2``, ``kg m-2 s0``…). A producer whose
files carry a known non-standard spelling is named explicitly in :data:`PRODUCER_SPELLINGS`.
"""

from __future__ import annotations

import re

MM_PER_INCH = 25.4

#: Unit spelling (normalised by :func:`normalise`) -> factor to mm.
AMOUNT_UNITS: dict[str, float] = {
    **{name: 1.0 for name in ("mm", "millimeter", "millimeters", "millimetre", "millimetres")},
    **{name: 1000.0 for name in ("m", "meter", "meters", "metre", "metres")},
    **{name: MM_PER_INCH for name in ("in", "inch", "inches")},
    **{name: 1.0 for name in ("kg m-2", "kg m**-2", "kg m^-2", "kg.m-2", "kg/m2", "kg/m^2", "kg/m**2",
                              "kg m-2 s0", "kg.m**-2", "kg.m^-2", "kg m-2 (mm)")},
}

#: Known non-standard spellings of named producers: (producer, spelling) -> factor to mm. The
#: producer is matched in the file's global ``institution``/``source`` attributes.
PRODUCER_SPELLINGS: dict[tuple[str, str], float] = {
    ("Delft-FEWS", "IN"): MM_PER_INCH,  # NOAA RFC QPE exported from Delft-FEWS ("IN" for inches)
    ("Delft-FEWS", "MM"): 1.0,
}

#: What the error messages list as accepted.
ACCEPTED_TEXT = "mm, m, in or kg m-2 (UDUNITS spellings, case-sensitive)"


def normalise(units: str) -> str:
    """``"  kg   m-2 "`` -> ``"kg m-2"``: blanks trimmed and collapsed, nothing else changed."""
    return re.sub(r"\s+", " ", units.strip())


def amount_factor(units: str, producer: str = "") -> float | None:
    """Factor from ``units`` to mm, or None when the spelling is not an accepted amount unit.

    Parameters
    ----------
    units : str
        The unit string as the file writes it.
    producer : str
        The file's producer description (e.g. its ``source`` and ``institution`` attributes),
        searched for the names of :data:`PRODUCER_SPELLINGS`.

    Returns
    -------
    float or None
    """
    text = normalise(units)
    factor = AMOUNT_UNITS.get(text)
    if factor is not None:
        return factor
    for (name, spelling), value in PRODUCER_SPELLINGS.items():
        if spelling == text and name in producer:
            return value
    return None
