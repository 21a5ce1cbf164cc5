"""The evaluation table: a few headline numbers of each ``harpnet-scores/1`` row, its columns defined once.

:data:`SUMMARY_COLUMNS` names every number of :func:`summarise` (its key in ``evaluate --json``'s
``summary``) with its table heading; the CLI prints the table from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: The threshold (mm per 3 h, 0.1 inch) and FSS window (fine cells) of the table.
TABLE_THRESHOLD = 2.54
TABLE_WINDOW = 9
#: Rows the MSE gains are measured against (``mse_gain_vs_<row>``).
GAIN_REFERENCES = ("bilinear", "ratio")

_AT = f"{TABLE_THRESHOLD:g}"  # "2.54" in headings
_TAG = _AT.replace(".", "p")  # "2p54" in keys


@dataclass(frozen=True)
class Column:
    """One number of the summary: its key and its heading in the table."""

    key: str
    """Key in :func:`summarise`'s result (and in ``evaluate --json``'s ``summary``)."""
    heading: str
    """Column heading of the printed table."""
    signed: bool = False
    """A fraction printed as a signed percentage (the MSE gains)."""


#: The table's columns, in order (the row name comes first and is not a column here).
SUMMARY_COLUMNS: tuple[Column, ...] = (
    Column("mae", "MAE"),
    Column("rmse", "RMSE"),
    Column("bias", "bias"),
    Column("pearson_r", "r"),
    Column(f"csi_{_TAG}", f"CSI@{_AT}"),
    Column(f"ets_{_TAG}", f"ETS@{_AT}"),
    Column(f"fss_{_TAG}_w{TABLE_WINDOW}", f"FSS@{_AT}/{TABLE_WINDOW}"),
    Column("fss_p90_w1", "FSS@p90/1"),
    Column("spectral_ratio_high", "spec hi"),
    Column("mass_error", "mass err"),
    *(Column(f"mse_gain_vs_{ref}", f"MSE vs {ref}", signed=True) for ref in GAIN_REFERENCES),
)


def pick(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    """The first row whose keys equal ``match`` (floats compared to 1e-9).

    Parameters
    ----------
    rows : list of dict
        E.g. the ``categorical`` or ``fss`` list of a ``harpnet-scores/1`` row.
    **match
        Keys and values, e.g. ``threshold_mm=2.54, window=9``.

    Returns
    -------
    dict or None
    """
    for r in rows:
        if all(abs(float(r[k]) - float(v)) < 1e-9 for k, v in match.items()):
            return r
    return None


def summarise(row: dict[str, Any], refs: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """The table's numbers of one ``harpnet-scores/1`` row, keyed and ordered as :data:`SUMMARY_COLUMNS`.

    ``spectral_ratio_high`` is the mean power ratio over the top quarter of wavenumbers,
    ``mass_error`` the row's ``mass.abs_rel_error`` and ``mse_gain_vs_<ref>`` ``1 − MSE / MSE_ref``
    (a fraction).

    Parameters
    ----------
    row : dict
        :meth:`~harpnet_cli.core.metrics.accumulators.ScoreAccumulator.to_dict` output, with
        ``fss_p90_w1`` added.
    refs : dict
        The rows of :data:`GAIN_REFERENCES`, for the MSE gains.

    Returns
    -------
    dict
        Column key → number (None when undefined).
    """
    cont = row["continuous"]
    cat = pick(row["categorical"], threshold_mm=TABLE_THRESHOLD) or {}
    fss = pick(row["fss"], threshold_mm=TABLE_THRESHOLD, window=TABLE_WINDOW) or {}
    spec = row.get("spectrum")
    high = None
    if spec:
        k = np.asarray(spec["wavenumber"], dtype=float)
        r = np.asarray([np.nan if v is None else v for v in spec["ratio"]], dtype=float)
        sel = (k >= 0.75 * k.max()) & np.isfinite(r)
        high = float(r[sel].mean()) if sel.any() else None

    def gain(ref: str) -> float | None:
        mine, theirs = cont["rmse"], refs.get(ref, {}).get("continuous", {}).get("rmse")
        if mine is None or not theirs:
            return None
        return 1.0 - (mine / theirs) ** 2

    values = {
        "mae": cont["mae"], "rmse": cont["rmse"], "bias": cont["bias"], "pearson_r": cont["pearson_r"],
        f"csi_{_TAG}": cat.get("csi"), f"ets_{_TAG}": cat.get("ets"), f"fss_{_TAG}_w{TABLE_WINDOW}": fss.get("fss"),
        "fss_p90_w1": row.get("fss_p90_w1"),
        "spectral_ratio_high": high, "mass_error": (row.get("mass") or {}).get("abs_rel_error"),
        **{f"mse_gain_vs_{ref}": gain(ref) for ref in GAIN_REFERENCES},
    }
    return {c.key: values[c.key] for c in SUMMARY_COLUMNS}
