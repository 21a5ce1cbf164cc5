"""Models as ONNX graphs: the export, ONNX Runtime's results against torch's, where graphs are kept."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from harpnet_cli.core.model.ensemble import EnsembleDownscaler
from harpnet_cli.core.model.onnx import GraphModel
from harpnet_cli.core.model.wrapper import Downscaler
from harpnet_cli.io.cache import CACHE_ENV
from harpnet_cli.io.default_model import DEFAULT_MODEL_DIR
from harpnet_cli.io.model_files import ModelFile
from harpnet_cli.io.onnx_graphs import SOURCE_KEY, cached_graph_path, graph_beside, graph_matches
from harpnet_cli.testing.models import make_random_checkpoint, make_random_ensemble
from harpnet_cli.workflows import models as model_files
from harpnet_cli.workflows.models import (
    export_model_graph,
    load_models,
    model_graph,
    save_half_precision,
    write_graph_beside,
)

TINY = {"channels": [8, 16], "bridge": 16}
#: The bundled default's inputs: the window length as a coarse input, both derived inputs.
PERIOD_AWARE = {**TINY, "coarse_inputs": ["precip", "log_period_hours"], "periods": [1.0, 3.0, 24.0],
                "derived_inputs": ["precip_nearest", "terrain_anomaly"]}
STOCHASTIC = {**TINY, "noise_scales": [0.0, 4.0]}
#: GroupNorm (for small training batches) and the softplus output map.
GROUP_SOFTPLUS = {**TINY, "norm": "group", "output": "softplus"}


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder per test: what one test exports is not another's."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def inputs(config, tile: int, batch: int = 2, members: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Buffered coarse tiles with rain and a window length, terrain, and ``members`` members' noise."""
    rng = np.random.default_rng(seed)
    n = tile // config.ratio + 2 * config.buffer
    coarse = (rng.gamma(0.6, 3.0, (batch, len(config.coarse_inputs), n, n)) * (rng.random((batch, 1, n, n)) > 0.3))
    if len(config.coarse_inputs) > 1:
        coarse[:, 1] = np.log(3.0)
    static = [rng.uniform(0, 2500, (batch, 1, tile, tile))]
    if members:
        static.append(rng.standard_normal((batch, members * len(config.noise_scales), tile, tile)))
    return coarse.astype(np.float32), np.concatenate(static, axis=1).astype(np.float32)


def torch_output(module: torch.nn.Module, config, tile: int, coarse: np.ndarray, static: np.ndarray) -> np.ndarray:
    """What torch computes on tiles of side ``tile`` (members rebuilt on that tile, as downscale does)."""
    def rebuilt(m: Downscaler) -> Downscaler:
        return Downscaler.from_state({**m.config.model_dump(mode="json"), "tile": tile}, m.state_dict()).eval()

    if isinstance(module, EnsembleDownscaler):
        module = EnsembleDownscaler([rebuilt(m) for m in module.members]).eval()
    else:
        module = rebuilt(module)
    with torch.inference_mode():
        return module(torch.from_numpy(coarse), torch.from_numpy(static)).numpy()


@pytest.mark.parametrize(("kind", "overrides"), [("plain", TINY), ("period-aware", PERIOD_AWARE),
                                                 ("stochastic", STOCHASTIC), ("group-softplus", GROUP_SOFTPLUS)])
@pytest.mark.parametrize("tile", [64, 128, 96])
def test_the_graph_computes_what_torch_computes_at_any_tile_size(tmp_path: Path, kind: str, overrides: dict,
                                                                  tile: int) -> None:
    path = make_random_checkpoint(tmp_path / f"{kind}.pt", seed=4, **overrides)
    model = load_models(ModelFile(path)).models[0]
    graph = GraphModel(export_model_graph(ModelFile(path)), threads=1)
    members = 3 if kind == "stochastic" else 0  # the export traced two: the member count is free too
    coarse, static = inputs(model.config, tile, members=members)
    want = torch_output(model, model.config, tile, coarse, static)
    got = graph.predict(coarse, static)
    assert got.shape == want.shape == ((members, 2, 1, tile, tile) if members else (2, 1, tile, tile))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.max()))
    assert want.max() > 0.5  # not trivially equal: rain came out
    # mass conservation is in the graph: every 4x4 block keeps its coarse cell
    b = model.config.buffer
    centre = coarse[:, 0, b:-b, b:-b]
    blocks = got.reshape(*got.shape[:-2], tile // 4, 4, tile // 4, 4).mean(axis=(-3, -1))
    np.testing.assert_allclose(blocks[..., 0, :, :], np.broadcast_to(centre, blocks[..., 0, :, :].shape), rtol=1e-4,
                               atol=1e-5)


def test_an_ensemble_graph_runs_every_member(tmp_path: Path) -> None:
    path = make_random_ensemble(tmp_path / "ens.pt", **TINY)
    loaded = load_models(ModelFile(path))
    graph = GraphModel(export_model_graph(ModelFile(path)), threads=2)
    coarse, static = inputs(loaded.models[0].config, 128, batch=3)
    want = torch_output(EnsembleDownscaler(loaded.models), loaded.models[0].config, 128, coarse, static)
    got = graph.predict(coarse, static)
    assert got.shape == (2, 3, 1, 128, 128)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.max()))
    assert np.abs(got[0] - got[1]).max() > 1e-3  # two different members


def test_float16_weights_are_stored_at_half_size_and_computed_as_before(tmp_path: Path) -> None:
    full = make_random_checkpoint(tmp_path / "full.pt", seed=2, preset="lite")
    half = save_half_precision(full, tmp_path / "half.pt")
    full_graph, half_graph = (export_model_graph(ModelFile(p)) for p in (full, half))
    assert len(half_graph) < 0.6 * len(full_graph)
    model = load_models(ModelFile(half)).models[0]
    coarse, static = inputs(model.config, 64)
    want = torch_output(model, model.config, 64, coarse, static)
    np.testing.assert_allclose(GraphModel(half_graph).predict(coarse, static), want, rtol=1e-4,
                               atol=1e-4 * float(want.max()))


def test_a_graph_is_exported_once_then_read_from_the_cache(tmp_path: Path, own_cache: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_random_checkpoint(tmp_path / "model.pt", seed=5, **TINY)
    notes: list[str] = []
    first = model_graph(ModelFile(path), threads=1, note=notes.append)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    cached = cached_graph_path(sha)
    assert cached is not None and cached.is_file() and cached.parent.parent == own_cache
    assert len(notes) == 1 and "exported model.pt" in notes[0] and str(cached) in notes[0]
    assert first.metadata[SOURCE_KEY] == sha

    def no_export(*args: object) -> bytes:
        raise AssertionError("exported again")

    monkeypatch.setattr(model_files, "export_model_graph", no_export)
    second = model_graph(ModelFile(path), threads=1, note=notes.append)
    assert len(notes) == 1
    coarse, static = inputs(load_models(ModelFile(path)).models[0].config, 64)
    np.testing.assert_array_equal(first.predict(coarse, static), second.predict(coarse, static))


def test_a_graph_beside_the_model_is_used_without_a_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_random_checkpoint(tmp_path / "model.pt", seed=6, **TINY)
    written = write_graph_beside(path)
    assert written == tmp_path / "model.onnx" == graph_beside(path)
    monkeypatch.setenv(CACHE_ENV, "off")
    monkeypatch.setattr(model_files, "export_model_graph", lambda *a: pytest.fail("exported although shipped"))
    graph = model_graph(ModelFile(path), threads=1)
    assert graph.metadata[SOURCE_KEY] == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("beside", ["another model's graph", "damaged bytes"])
def test_a_graph_that_is_not_the_models_is_never_run(tmp_path: Path, beside: str) -> None:
    path = make_random_checkpoint(tmp_path / "model.pt", seed=7, **TINY)
    other = make_random_checkpoint(tmp_path / "other" / "model.pt", seed=8, **TINY)
    if beside == "damaged bytes":
        graph_beside(path).write_bytes(b"\x08\x07not a graph")
    else:
        graph_beside(path).write_bytes(graph_beside(write_graph_beside(other)).read_bytes())
    notes: list[str] = []
    graph = model_graph(ModelFile(path), threads=1, note=notes.append)
    assert notes and "exported" in notes[0]  # made again from the model itself
    model = load_models(ModelFile(path)).models[0]
    coarse, static = inputs(model.config, 64)
    want = torch_output(model, model.config, 64, coarse, static)
    np.testing.assert_allclose(graph.predict(coarse, static), want, rtol=1e-4, atol=1e-4 * float(want.max()))


def test_with_the_cache_off_the_export_says_it_was_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, "off")
    path = make_random_checkpoint(tmp_path / "model.pt", seed=9, **TINY)
    notes: list[str] = []
    model_graph(ModelFile(path), threads=1, note=notes.append)
    assert cached_graph_path("0" * 64) is None
    assert "not cached" in notes[0]


def test_graph_matches_needs_the_same_file_and_export_version() -> None:
    sha = "ab" * 32
    assert graph_matches({SOURCE_KEY: sha, "harpnet_graph_version": "1"}, sha)
    assert not graph_matches({SOURCE_KEY: sha, "harpnet_graph_version": "0"}, sha)
    assert not graph_matches({SOURCE_KEY: "cd" * 32, "harpnet_graph_version": "1"}, sha)
    assert not graph_matches({}, sha)


@pytest.mark.parametrize("name", ["model", "stochastic"])
def test_the_bundled_models_ship_their_own_graphs(name: str) -> None:
    """Rebuilding a bundled model without its graph (tools/bundle_default.py writes both) fails here."""
    model = DEFAULT_MODEL_DIR / f"{name}.pt"
    graph = GraphModel(graph_beside(model).read_bytes())
    assert graph_matches(graph.metadata, hashlib.sha256(model.read_bytes()).hexdigest())
