"""``harpnet evaluate``: score models, ensembles and baselines on a store split, streamed.

For each batch of the split (sorted indices, read in chunks) the models' predictions (under
``torch.inference_mode``) and the baselines are fed to one
:class:`~harpnet_cli.core.metrics.ScoreAccumulator` per row: ``bilinear``, ``bicubic`` and
``ratio`` (a static per-tile ratio climatology fitted by streaming over the store's TRAIN split),
and with ``--climatology FILE`` also ``ratio_prism`` (the same static-ratio method with the fine
climatology taken from a PRISM normal instead, see :mod:`harpnet_cli.core.climatology`).
A run directory gives one row per epoch (``epoch_NNN``); an ensemble file gives a row per member
(``member_eNNN``), the ensemble mean (``ensemble_mean``) and probabilistic scores.

The scores are computed in :mod:`harpnet_cli.core.metrics` (the accumulators, and the table's
numbers by :func:`~harpnet_cli.core.metrics.summary.summarise`), the baselines in
:mod:`harpnet_cli.core.baselines` and the files written by :mod:`harpnet_cli.io.scores`; this
module wires the store, the models and the baselines to them.

``--bbox S,N,W,E`` scores only the samples of tiles whose centre (the middle of the 64 x 64
fine tile) lies in the box, edges included; the ratio baseline is then fitted on those tiles only
(it is per tile, so their ratios are unchanged).

Before scoring, two streaming passes over the scored truth find ``fss_p90_threshold_mm``: the
exact 90th percentile (numpy's linear interpolation) of all wet truth values (finite and above
the store's ``wet_threshold_mm``, 0.1 mm) of all scored samples, one threshold for the whole
evaluation (see :class:`~harpnet_cli.core.metrics.WetQuantile`). Every row then gets
``fss_p90_w1``, the grid-scale (1 fine cell, 0.0625°) FSS of the events ``value >= threshold``
over the complete samples, numerator and denominator summed over samples.

JSON schema of ``--json``: ``"schema": "harpnet-evaluate/1"``
--------------------------------------------------------------
Keys are stable; new keys may be added. Undefined numbers are ``null``.

``schema`` (str)
    ``"harpnet-evaluate/1"``.
``model`` (str)
    The MODEL argument as given.
``store`` (str)
    The store path.
``split`` (str)
    ``"test"`` or ``"validation"``.
``n_samples`` (int)
    Samples (tiles) scored.
``n_tiles`` (int)
    Distinct tiles among the scored samples.
``bbox`` (list or null)
    ``[south, north, west, east]`` of ``--bbox`` (degrees), null for the whole store.
``climatology`` (str or null)
    The ``--climatology`` file, null without one.
``climatology_coverage`` (float or null)
    Fraction of the fine cells of the store's tiles that the climatology covers (elsewhere the
    ``ratio_prism`` ratio is 1); null without ``--climatology``.
``wet_threshold_mm`` (float)
    Truth values above this (mm per 3 h) are wet: the store's ``stats.wet_threshold_mm``, 0.1.
``fss_p90_threshold_mm`` (float or null)
    The 90th percentile of the wet truth values of all scored samples (mm per 3 h), the event
    threshold of ``fss_p90_w1``; null when no value is wet.
``rows`` (object)
    Row name → :meth:`ScoreAccumulator.to_dict` output (schema ``harpnet-scores/1``, see
    :mod:`harpnet_cli.core.metrics.accumulators`) plus ``fss_p90_w1`` (float or null: FSS at
    ``fss_p90_threshold_mm``, window 1). Baseline rows are always ``bilinear``,
    ``bilinear_conservative`` (bilinear, then each 4×4 block scaled so its mean equals its coarse
    cell), ``bicubic`` and ``ratio``, and ``ratio_prism`` with ``--climatology``.
``summary`` (object)
    Row name → the table's numbers, keyed as the columns of
    :data:`~harpnet_cli.core.metrics.summary.SUMMARY_COLUMNS`: ``mae``, ``rmse``, ``bias``, ``pearson_r``, ``csi_2p54``,
    ``ets_2p54``, ``fss_2p54_w9``, ``fss_p90_w1``, ``spectral_ratio_high`` (mean power ratio over
    the top quarter of wavenumbers), ``mass_error`` (``mass.abs_rel_error``),
    ``mse_gain_vs_bilinear`` and ``mse_gain_vs_ratio`` (``1 − MSE / MSE_ref``, as fractions).
``ensemble`` (object or null)
    Only for ensemble files: ``n_members``, ``crps`` (mean CRPS, mm per 3 h, standard estimator),
    ``crps_fair``, ``spread`` (root mean unbiased member variance), ``rmse_mean`` (RMSE of the
    ensemble mean), ``spread_skill_ratio`` (with the ``sqrt((m+1)/m)`` correction),
    ``rank_histogram`` (``m + 1`` relative frequencies), ``brier`` (list: ``threshold_mm``,
    ``brier_score``, ``base_rate``), ``n_values``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harpnet_cli.core.metrics import EnsembleAccumulator, FssAccumulator, ScoreAccumulator, WetQuantile
from harpnet_cli.core.metrics.summary import GAIN_REFERENCES, TABLE_THRESHOLD, pick, summarise
from harpnet_cli.errors import InputDataError, UsageError
from harpnet_cli.grids import GridSpec
from harpnet_cli.registry import PERIOD_INPUT
from harpnet_cli.workflows.reporting import NullReporter, Reporter
from harpnet_cli.workflows.scoring import WindowInputs, chunks, input_columns, predict, spaced_subset

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from harpnet_cli.config import EvaluateConfig
    from harpnet_cli.core.baselines import RatioClimatology
    from harpnet_cli.io.store import TrainingStore
    from harpnet_cli.workflows.batches import NoiseSpec

SCHEMA = "harpnet-evaluate/1"
BASELINES = ("bilinear", "bilinear_conservative", "bicubic", "ratio")
#: The static-ratio row built from ``--climatology`` (a PRISM normal).
EXTERNAL_RATIO = "ratio_prism"
#: Quantile of the wet truth values that sets the threshold of ``fss_p90_w1``, and its window.
RELATIVE_QUANTILE = 0.9
RELATIVE_WINDOW = 1
#: PRISM daily normals (mm per day) → mm per 3 h.
PER_3H = 8.0
#: Case panels kept for ``--plots``.
N_CASES = 3


# -- the samples scored ---------------------------------------------------------------------------
def scored_samples(cfg: EvaluateConfig, store: TrainingStore) -> tuple[np.ndarray, np.ndarray | None]:
    """The store indices scored: the split, inside ``--bbox``, at most ``--max-samples`` of them.

    Returns
    -------
    idx : numpy.ndarray
        ``(n,)`` sorted store indices, ``n >= 1``.
    in_box : numpy.ndarray or None
        ``(T,)`` bool: the tiles inside ``--bbox`` (None without one).

    Raises
    ------
    UsageError
        If the split is empty, or has no sample in the box.
    """
    idx = store.indices(cfg.split)
    in_box = None
    if cfg.bbox is not None:
        in_box = tiles_in_bbox(np.asarray(store.tile_origin[:]), store_grid(store), cfg.bbox)
        box = ",".join(f"{v:g}" for v in cfg.bbox)
        if not in_box.any():
            raise UsageError(f"--bbox {box}: no tile of {cfg.data} has its centre in the box")
        idx = idx[in_box[np.asarray(store.tile[idx], dtype=np.int64)]]
        if not len(idx):
            raise UsageError(f"--bbox {box}: the {cfg.split} split of {cfg.data} has no sample in the box "
                             f"({int(in_box.sum())} tiles)")
    if cfg.period is not None:
        idx = idx[period_rows(store, idx, cfg.period)]
        if not len(idx):
            raise UsageError(f"--period {cfg.period:g}: the {cfg.split} split of {cfg.data} has no "
                             f"{cfg.period:g}-hour window")
    idx = spaced_subset(idx, cfg.max_samples)
    if not len(idx):
        raise UsageError(f"{cfg.data}: the {cfg.split} split is empty")
    return idx, in_box


def period_rows(store: TrainingStore, idx: np.ndarray, hours: float) -> np.ndarray:
    """Which of the samples ``idx`` are windows of ``hours`` (by the store's ``log_period_hours``)."""
    if PERIOD_INPUT not in store.state_names:
        if abs(hours - 3.0) < 1e-6:
            return np.ones(len(idx), dtype=bool)  # a store without the column holds 3-hour windows
        raise UsageError(f"{store.path} records no window lengths (prepared before --periods): it holds 3-hour "
                         "windows only")
    column = store.state_names.index(PERIOD_INPUT)
    values = np.asarray(store.state[: len(store)], dtype=np.float64)[idx, column]
    return np.abs(np.exp(values) - hours) < 1e-3


# -- baselines and thresholds fitted on the store -------------------------------------------------
def fit_ratio(store: TrainingStore, batch_size: int, reporter: Reporter, tiles: np.ndarray | None = None) -> Any:
    """The ratio baseline fitted by streaming over the store's TRAIN split.

    Parameters
    ----------
    store : TrainingStore
    batch_size : int
        Samples per read.
    reporter : Reporter
    tiles : numpy.ndarray or None
        ``(T,)`` bool: fit only the samples of these tiles (the others keep ratio 1).
    """
    from harpnet_cli.core.baselines import RatioClimatology

    clim = RatioClimatology(store.n_tiles)
    train = store.indices("train")
    if tiles is not None:
        train = train[tiles[np.asarray(store.tile[train], dtype=np.int64)]]
    with reporter.progress("fitting ratio baseline", len(train)) as advance:
        for rows in chunks(train, batch_size):
            s = observed_only(store.read(rows))
            clim.add(s["tile"], s["fine"][:, 0], s["coarse"][:, 0])
            advance(len(rows))
    return clim


def fit_external_ratio(path: Path, store: TrainingStore, reporter: Reporter) -> tuple[Any, float]:
    """The ``ratio_prism`` baseline: static ratios from a PRISM normal (mm per day).

    Returns
    -------
    clim : RatioClimatology
        Indexed by the store's tile ids.
    coverage : float
        Fraction of the tiles' fine cells with a climatology value.

    Raises
    ------
    InputDataError
        If the file cannot be read, or the store's grid is unusable.
    """
    from harpnet_cli.core.climatology import external_ratio
    from harpnet_cli.io.prism import read_prism

    raster = read_prism(path)
    clim, coverage = external_ratio(raster.grid, raster.data / PER_3H, store_grid(store),
                                    np.asarray(store.tile_origin[:]))
    reporter.info(f"{path.name}: climatology covers {100 * coverage:.1f}% of the store's tile cells")
    if coverage == 0:
        reporter.warning(f"{path}: the climatology covers none of the store's tiles; ratio_prism is bilinear")
    return clim, coverage


def store_grid(store: TrainingStore) -> GridSpec:
    """The store's :class:`GridSpec` (from its ``grid`` attribute).

    Raises
    ------
    InputDataError
        If the attribute is not a grid.
    """
    try:
        g = store.grid
        return GridSpec(float(g["lat0"]), float(g["lon0"]), int(g["ny"]), int(g["nx"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputDataError(store.path, f"its grid attribute is unusable ({exc})") from None


def tile_centres(origins: np.ndarray, grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude of the centre of each 64 x 64 tile.

    Parameters
    ----------
    origins : numpy.ndarray
        ``(T, 2)`` ``(y0, x0)`` fine offsets (rows south → north).
    grid : GridSpec
        The store's domain.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``(T,)`` latitudes and longitudes (continuous from ``grid.west``), degrees.
    """
    from harpnet_cli.core.baselines import FINE_TILE
    from harpnet_cli.grids import FINE_RES

    org = np.asarray(origins, dtype=np.float64).reshape(-1, 2)
    half = FINE_TILE / 2
    return grid.south + FINE_RES * (org[:, 0] + half), grid.west + FINE_RES * (org[:, 1] + half)


def tiles_in_bbox(origins: np.ndarray, grid: GridSpec, bbox: Sequence[float]) -> np.ndarray:
    """Which tiles have their centre inside ``bbox`` (edges included).

    Parameters
    ----------
    origins : numpy.ndarray
        ``(T, 2)`` tile origins.
    grid : GridSpec
        The store's domain.
    bbox : sequence of float
        ``(south, north, west, east)`` degrees, any longitude convention; ``east < west`` after
        wrapping crosses the date line.

    Returns
    -------
    numpy.ndarray
        ``(T,)`` bool.
    """
    from harpnet_cli.grids import wrap_lon

    south, north, west, east = (float(v) for v in bbox)
    lat, lon = tile_centres(origins, grid)
    span = float(wrap_lon(east, west=west)) - west
    if span <= 0 or abs(east - west) >= 360:  # east == west after wrapping: the full circle (as GridSpec)
        span = 360.0
    rel = wrap_lon(lon, west=west) - west
    eps = 1e-9
    return (lat >= south - eps) & (lat <= north + eps) & (rel <= span + eps)


def observed_only(sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The samples of a :meth:`TrainingStore.read` whose target is observed everywhere.

    Partly unobserved training tiles (``prepare --max-missing``) train the model through a masked
    loss but are left out of the fitted ratio baseline, whose per-tile sums need whole tiles
    (scored splits never hold them).
    """
    ok = np.isfinite(sample["fine"]).all(axis=(1, 2, 3))
    return sample if ok.all() else {k: v[ok] for k, v in sample.items()}


def relative_threshold(store: TrainingStore, idx: np.ndarray, batch_size: int, wet_mm: float,
                       reporter: Reporter) -> float:
    """The 90th percentile of the wet truth of samples ``idx``, exact, in two streaming passes.

    Returns
    -------
    float
        mm per 3 h; NaN when no value is wet.
    """
    wq = WetQuantile(RELATIVE_QUANTILE, wet_mm)
    with reporter.progress("wet-value percentile", 2 * len(idx)) as advance:
        for block in chunks(idx, batch_size):
            wq.count(store.fine[block])
            advance(len(block))
        for block in chunks(idx, batch_size):
            wq.collect(store.fine[block])
            advance(len(block))
    return wq.value()


# -- the models scored ---------------------------------------------------------------------------
@dataclass
class Scored:
    """One model or ensemble to run: its rows and how to feed it."""

    name: str
    module: Any
    columns: list[int]
    static: bool
    members: list[str] = field(default_factory=list)
    """Row names of the members (ensembles only; the mean is ``name``)."""
    noise: NoiseSpec | None = None
    """A stochastic model's noise (its members are samples; only the first gets a row)."""
    n_members: int = 0
    """Members of an ensemble or samples of a stochastic model (0 for a deterministic model)."""
    windows: WindowInputs | None = None
    """How the store's windows of several lengths go in (None for a store of 3-hour windows)."""


def load_models(path: Path, store: TrainingStore, device: torch.device, samples: int = 10,
                seed: int = 0) -> list[Scored]:
    """Resolve MODEL: a run directory, an ensemble file or a checkpoint.

    Raises
    ------
    InputDataError
        If nothing loadable is there.
    """
    from harpnet_cli.core.model.ensemble import EnsembleDownscaler
    from harpnet_cli.io.ensembles import is_ensemble
    from harpnet_cli.io.runs import epoch_checkpoints
    from harpnet_cli.workflows.models import load_ensemble_models, load_model

    def one(name: str, p: Path) -> Scored:
        model, _ = load_model(p, device)
        cfg = model.config
        columns = input_columns(cfg.coarse_inputs, store.state_names, store.path)
        windows = WindowInputs.for_store(cfg, store.state_names)
        if cfg.stochastic:  # its samples are scored as an ensemble; the first sample gets a row of its own
            from harpnet_cli.workflows.batches import NoiseSpec

            noise = NoiseSpec(samples, tuple(cfg.noise_scales), (seed & 0xFFFFFFFF, 0xE7A1))
            return Scored(name, model.for_inference(), columns, True, [f"{name}_sample"], noise, samples, windows)
        return Scored(name, model.for_inference(), columns, bool(cfg.static_inputs), windows=windows)

    if path.is_dir():
        files = epoch_checkpoints(path)
        if not files:
            raise InputDataError(path, "a folder without checkpoints/epoch_NNN.pt (not a training run)")
        return [one(f"epoch_{e:03d}", p) for e, p in files]
    if is_ensemble(path):
        members, _, meta = load_ensemble_models(path, device)
        names = [f"member_e{int(m.get('epoch', i)):03d}" for i, m in enumerate(meta["members"])]
        if len(set(names)) < len(names):
            names = [f"member_{i:02d}" for i in range(len(names))]
        ens = EnsembleDownscaler([m.for_inference() for m in members])
        cfg = members[0].config
        return [Scored("ensemble_mean", ens, input_columns(cfg.coarse_inputs, store.state_names, store.path),
                       bool(cfg.static_inputs), names, n_members=len(names),
                       windows=WindowInputs.for_store(cfg, store.state_names))]
    reserved = (*BASELINES, EXTERNAL_RATIO)
    return [one(path.stem if path.stem not in reserved else f"model_{path.stem}", path)]


# -- scoring -------------------------------------------------------------------------------------
class Scoring:
    """The accumulators of every row: its scores, its FSS at the relative threshold and, for an
    ensemble, the probabilistic scores of its members.

    Parameters
    ----------
    scored : list of Scored
        The models (their member rows come before their own).
    external : bool
        Whether the ``ratio_prism`` row is scored.
    threshold : float
        Event threshold of ``fss_p90_w1`` (mm per 3 h; NaN when no truth value is wet).
    """

    def __init__(self, scored: list[Scored], external: bool, threshold: float) -> None:
        self.model_rows = [n for s in scored for n in (*s.members, s.name)]
        names = self.model_rows + list(BASELINES) + ([EXTERNAL_RATIO] if external else [])
        self.scores = {n: ScoreAccumulator(n) for n in names}
        self.relative = {n: FssAccumulator(threshold, RELATIVE_WINDOW) for n in names}
        self.ensembles = {s.name: EnsembleAccumulator(s.n_members) for s in scored if s.n_members}

    def add(self, preds: dict[str, np.ndarray], sample: dict[str, np.ndarray]) -> None:
        """Score one batch: ``preds`` row name → ``(B, 64, 64)`` against the batch's truth."""
        coarse, truth, tiles = sample["coarse"][:, 0], sample["fine"][:, 0], sample["tile"]
        for n, p in preds.items():
            self.scores[n].add(p, truth, coarse=coarse, tile_ids=tiles)
            self.relative[n].add(p, truth)

    def rows(self) -> dict[str, dict[str, Any]]:
        """Row name → ``harpnet-scores/1`` row with ``fss_p90_w1`` added."""
        rows = {n: a.to_dict() for n, a in self.scores.items()}
        for n, r in rows.items():
            value = self.relative[n].value()
            r["fss_p90_w1"] = value if math.isfinite(value) else None
        return rows

    def ensemble(self) -> dict[str, Any] | None:
        """The probabilistic scores of the ensemble (None when no ensemble is scored)."""
        return next(iter(self.ensembles.values())).to_dict() if self.ensembles else None


def model_predictions(scored: list[Scored], sample: dict[str, np.ndarray], device: torch.device,
                      scoring: Scoring, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Row name → ``(B, 64, 64)`` prediction of every model (and member) on one store batch.

    An ensemble's members are scored for the probabilistic scores on the way; its row is their mean.
    """
    from harpnet_cli.core.baselines import bilinear

    truth = sample["fine"][:, 0]
    reference = bilinear(sample["coarse"][:, 0], mass_conserving=True)
    preds: dict[str, np.ndarray] = {}
    for s in scored:
        p = predict(s.module, sample, s.columns, s.static, device, s.noise, rows, s.windows)
        if s.n_members:
            preds.update(zip(s.members, p, strict=False))  # a stochastic model: its first sample only
            scoring.ensembles[s.name].add(p, truth, reference)
            p = p.mean(axis=0)
        preds[s.name] = p
    return preds


def baseline_predictions(sample: dict[str, np.ndarray], clim: RatioClimatology,
                         external: RatioClimatology | None) -> dict[str, np.ndarray]:
    """Row name → ``(B, 64, 64)`` prediction of every baseline (:data:`BASELINES`, ``ratio_prism``)."""
    from harpnet_cli.core.baselines import bicubic, bilinear

    coarse, tiles = sample["coarse"][:, 0], sample["tile"]
    preds = {"bilinear": bilinear(coarse), "bilinear_conservative": bilinear(coarse, mass_conserving=True),
             "bicubic": bicubic(coarse), "ratio": clim.apply(tiles, coarse)}
    if external is not None:
        preds[EXTERNAL_RATIO] = external.apply(tiles, coarse)
    return preds


# -- results --------------------------------------------------------------------------------------
@dataclass
class EvaluateResult:
    """What ``harpnet evaluate`` found."""

    split: str
    n_samples: int
    rows: dict[str, dict[str, Any]]
    summary: dict[str, dict[str, float | None]]
    ensemble: dict[str, Any] | None
    model_rows: list[str]
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)
    n_tiles: int = 0
    bbox: tuple[float, float, float, float] | None = None
    climatology: Path | None = None
    period: float | None = None
    """Window length (hours) the samples were restricted to (``--period``)."""
    climatology_coverage: float | None = None
    wet_threshold_mm: float = 0.1
    fss_p90_threshold_mm: float | None = None
    """Event threshold of ``fss_p90_w1`` (mm per 3 h); None when no truth value is wet."""

    def to_json(self, model: str, store: str) -> dict[str, Any]:
        """The ``--json`` document (schema ``harpnet-evaluate/1``)."""
        return {"schema": SCHEMA, "model": model, "store": store, "split": self.split,
                "n_samples": self.n_samples, "n_tiles": self.n_tiles,
                "bbox": None if self.bbox is None else list(self.bbox),
                "period_hours": self.period,
                "climatology": None if self.climatology is None else str(self.climatology),
                "climatology_coverage": self.climatology_coverage, "wet_threshold_mm": self.wet_threshold_mm,
                "fss_p90_threshold_mm": self.fss_p90_threshold_mm, "rows": self.rows, "summary": self.summary,
                "ensemble": self.ensemble}


def _keep_cases(cases: list[dict[str, Any]], sample: dict[str, np.ndarray], preds: dict[str, np.ndarray]) -> None:
    """Keep the ``N_CASES`` wettest samples seen so far (by truth total)."""
    totals = np.nansum(sample["fine"][:, 0], axis=(1, 2))
    for i in np.argsort(-totals)[:N_CASES]:
        cases.append({"total": float(totals[i]), "tile": int(sample["tile"][i]),
                      "coarse": sample["coarse"][i, 0].copy(), "truth": sample["fine"][i, 0].copy(),
                      "preds": {k: v[i].copy() for k, v in preds.items()}})
    cases.sort(key=lambda c: -c["total"])
    del cases[N_CASES:]


def run_evaluate(cfg: EvaluateConfig, reporter: Reporter | None = None) -> EvaluateResult:
    """Score MODEL and the baselines on one split of a store.

    Parameters
    ----------
    cfg : EvaluateConfig
    reporter : Reporter, optional

    Returns
    -------
    EvaluateResult

    Raises
    ------
    InputDataError
        If the store, the model or the climatology cannot be read.
    UsageError
        If the split is empty, or has no sample in ``cfg.bbox``.
    """
    from harpnet_cli.devices import select_device
    from harpnet_cli.io.scores import write_csv, write_json
    from harpnet_cli.io.store import WET_THRESHOLD_MM, TrainingStore

    rep = reporter or NullReporter()
    t0 = time.perf_counter()
    for out in (cfg.json_path, cfg.csv_path):
        if out is not None and not out.parent.exists():
            raise UsageError(f"{out.parent} does not exist (folder of {out.name})")
    store = TrainingStore.open(cfg.data)
    idx, in_box = scored_samples(cfg, store)
    device = select_device(cfg.device)
    scored = load_models(cfg.model, store, device, cfg.samples, cfg.seed)
    external, coverage = (fit_external_ratio(cfg.climatology, store, rep) if cfg.climatology is not None
                          else (None, None))
    clim = fit_ratio(store, cfg.batch_size, rep, in_box)
    wet_mm = float(store.stats.get("wet_threshold_mm", WET_THRESHOLD_MM))
    threshold = relative_threshold(store, idx, cfg.batch_size, wet_mm, rep)

    scoring = Scoring(scored, external is not None, threshold)
    cases: list[dict[str, Any]] = []
    with rep.progress(f"scoring {cfg.split}", len(idx)) as advance:
        for block in chunks(idx, cfg.batch_size):
            sample = store.read(block)
            preds = model_predictions(scored, sample, device, scoring, block)
            preds.update(baseline_predictions(sample, clim, external))
            scoring.add(preds, sample)
            _keep_cases(cases, sample, preds)
            advance(len(block))

    rows = scoring.rows()
    refs = {k: rows[k] for k in GAIN_REFERENCES}
    result = EvaluateResult(cfg.split, len(idx), rows, {n: summarise(r, refs) for n, r in rows.items()},
                            scoring.ensemble(), scoring.model_rows,
                            n_tiles=len(np.unique(np.asarray(store.tile[idx]))),
                            bbox=cfg.bbox, climatology=cfg.climatology, climatology_coverage=coverage,
                            period=cfg.period,
                            wet_threshold_mm=wet_mm,
                            fss_p90_threshold_mm=threshold if math.isfinite(threshold) else None)
    if cfg.json_path is not None:
        write_json(cfg.json_path, result.to_json(str(cfg.model), str(cfg.data)))
        result.outputs.append(cfg.json_path)
    origins = np.asarray(store.tile_origin[:])
    if cfg.csv_path is not None:
        write_csv(cfg.csv_path, rows, origins)
        result.outputs.append(cfg.csv_path)
    if cfg.plots is not None:
        result.outputs.extend(write_plots(cfg.plots, result, origins, cases))
    result.seconds = time.perf_counter() - t0
    return result


# -- outputs --------------------------------------------------------------------------------------
def _tile_mse(row: dict[str, Any], n_tiles: int) -> np.ndarray:
    """``(T,)`` per-tile MSE of a row (NaN for unseen tiles)."""
    out = np.full(n_tiles, np.nan)
    pt = row["per_tile"]
    out[np.asarray(pt["tile"], dtype=np.int64)] = [np.nan if v is None else v for v in pt["mse"]]
    return out


def write_plots(folder: Path, result: EvaluateResult, origins: np.ndarray, cases: list[dict[str, Any]]) -> list[Path]:
    """PNGs: per-tile MSE gain maps, spectra, performance diagram and case panels."""
    from harpnet_cli.io import plots

    folder.mkdir(parents=True, exist_ok=True)
    best = min(result.model_rows, key=lambda n: result.rows[n]["continuous"]["mae"] or math.inf)
    t = len(origins)
    mine = _tile_mse(result.rows[best], t)
    out = []
    for ref in ("bilinear", "ratio"):
        theirs = _tile_mse(result.rows[ref], t)
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = np.where(theirs > 0, 1.0 - mine / theirs, np.nan)
        out.append(plots.plot_tile_gain_map(folder / f"mse_gain_vs_{ref}.png", origins, gain,
                                            f"{best}: MSE reduction vs {ref}"))
    shown = [best, *(n for n in (*BASELINES, EXTERNAL_RATIO) if n in result.rows)]
    out.append(plots.plot_spectra(folder / "spectra.png", {n: result.rows[n].get("spectrum") for n in shown}))
    points = {}
    for n in shown:
        cat = pick(result.rows[n]["categorical"], threshold_mm=TABLE_THRESHOLD) or {}
        if cat.get("pod") is not None and cat.get("far") is not None:
            points[n] = (float(cat["pod"]), 1.0 - float(cat["far"]))
    out.append(plots.plot_performance_diagram(folder / "performance.png", points,
                                              f"events >= {TABLE_THRESHOLD} mm / 3 h"))
    for i, c in enumerate(cases):
        panels = {"truth": c["truth"], **{n: c["preds"][n] for n in shown}}
        out.append(plots.plot_case(folder / f"case_{i + 1}.png", c["coarse"], panels, f"tile {c['tile']}"))
    if result.ensemble:
        from harpnet_cli.io.probability_plots import plot_rank_histogram, plot_reliability

        e = result.ensemble
        what = f"{e['n_members']} members, {e['n_values']:,} cells"
        out.append(plot_reliability(folder / "reliability.png", e["brier"], f"reliability ({what})"))
        out.append(plot_rank_histogram(folder / "rank_histogram.png", e["rank_histogram"], f"rank histogram ({what})"))
    return out
