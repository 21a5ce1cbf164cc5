"""Model files → models: the one place that joins checkpoint/ensemble payloads (``io``) and the model (``core``).

:mod:`harpnet_cli.io.checkpoints` and :mod:`harpnet_cli.io.ensembles` read and write plain payloads
(a config dict, a state dict, metadata); :meth:`~harpnet_cli.core.model.wrapper.Downscaler.from_state`
builds a model from a config and a state dict. The functions here wire the two for every caller
(workflows, tools, benchmarks, tests) and word the one-line errors naming the file:

* :func:`load_model` — a checkpoint → ``(Downscaler, meta)``;
* :func:`load_ensemble_models` — an ensemble → ``(members, mode, meta)``;
* :func:`load_models` — a :class:`~harpnet_cli.io.model_files.ModelFile` (either kind, read once);
* :func:`save_half_precision` — a float16 copy of a checkpoint or ensemble;
* :func:`model_graph` — a model file's ONNX graph (beside it, cached, or exported now), for
  ONNX Runtime; :func:`write_graph_beside` ships one with a model file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harpnet_cli.errors import InputDataError

if TYPE_CHECKING:
    import torch

    from harpnet_cli.core.model.onnx import GraphModel
    from harpnet_cli.core.model.wrapper import Downscaler
    from harpnet_cli.io.model_files import ModelFile


@dataclass
class LoadedModels:
    """The model(s) of a model file.

    Attributes
    ----------
    models : list of Downscaler
        One for a checkpoint, every member (in the file's order) for an ensemble; in ``eval()``
        mode on the requested device.
    meta : dict
        The payload without the state dicts (ensembles: ``members`` keep ``epoch``, ``config`` and
        ``test_loss``).
    ensemble : bool
        True for a HARPNET-E ensemble file.
    """

    models: list[Downscaler]
    meta: dict[str, Any]
    ensemble: bool


def checkpoint_model(payload: Mapping[str, Any], path: str | Path,
                     device: str | torch.device = "cpu") -> tuple[Downscaler, dict[str, Any]]:
    """Build the model of a checkpoint payload: rebuilt from its config alone, weights loaded strictly.

    Parameters
    ----------
    payload : mapping
        What :func:`~harpnet_cli.io.checkpoints.read_checkpoint` returns.
    path : str or Path
        The file it came from, for messages.
    device : str or torch.device
        Where the model goes.

    Returns
    -------
    model : Downscaler
        In ``eval()`` mode, on ``device`` (channels-last weights on CPU, where that is faster),
        float32 whatever the stored precision.
    meta : dict
        Everything in the payload except the state dict.

    Raises
    ------
    InputDataError
        If the config is invalid or the weights do not match it.
    """
    import torch

    from harpnet_cli.core.model.wrapper import Downscaler, ModelStateError
    from harpnet_cli.io.checkpoints import first_line

    path = Path(path)
    try:
        model = Downscaler.from_state(payload["config"], payload["model"])
    except ModelStateError as exc:
        if exc.part == "config":
            raise InputDataError(path, f"invalid model config in checkpoint: {exc.where}: {exc.reason}") from None
        raise InputDataError(path, f"weights do not match the saved config: {exc.reason}") from None
    except RuntimeError as exc:
        raise InputDataError(path, f"weights do not match the saved config: {first_line(exc)}") from None
    model.to(device).eval()
    if model.coarse_mean.device.type == "cpu":  # measured ~1.4x faster on CPU; still trainable
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    meta = {k: v for k, v in payload.items() if k != "model"}
    return model, meta


def ensemble_models(payload: Mapping[str, Any], path: str | Path,
                    device: str | torch.device = "cpu") -> tuple[list[Downscaler], str, dict[str, Any]]:
    """Build every member of an ensemble payload.

    Parameters
    ----------
    payload : mapping
        What :func:`~harpnet_cli.io.ensembles.read_ensemble` returns.
    path : str or Path
        The file it came from, for messages.
    device : str or torch.device
        Where the models go.

    Returns
    -------
    members : list of Downscaler
        In ``eval()`` mode on ``device``, in the file's order.
    mode : str
        ``"members"``.
    meta : dict
        The payload without the state dicts (``members`` keep ``epoch``, ``config``, ``test_loss``).

    Raises
    ------
    InputDataError
        If a member's config is invalid or its weights do not match it.
    """
    from harpnet_cli.core.model.wrapper import Downscaler, ModelStateError

    path = Path(path)
    models = []
    for i, m in enumerate(payload["members"]):
        try:
            model = Downscaler.from_state(m["config"], m["model"])
        except ModelStateError as exc:
            if exc.part == "config":
                raise InputDataError(path, f"member {i}: invalid model config: {exc.reason}") from None
            raise InputDataError(path, f"member {i}: weights do not match its config: {exc.reason}") from None
        models.append(model.to(device).eval())
    meta = {k: v for k, v in payload.items() if k != "members"}
    meta["members"] = [{k: v for k, v in m.items() if k != "model"} for m in payload["members"]]
    return models, str(payload.get("mode", "members")), meta


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[Downscaler, dict[str, Any]]:
    """Load a checkpoint: rebuild the model from its config alone and load the weights strictly.

    Parameters
    ----------
    path : str or Path
        A file written by :func:`~harpnet_cli.io.checkpoints.save_checkpoint`.
    device : str or torch.device
        Where the model and any tensors in the metadata go.

    Returns
    -------
    model : Downscaler
        In ``eval()`` mode, on ``device`` (channels-last weights on CPU, where that is faster),
        float32 whatever the stored precision (``load_state_dict`` copies float16 weights, as
        :func:`save_half_precision` writes them, into the float32 model). Call
        :meth:`~harpnet_cli.core.model.wrapper.Downscaler.for_inference` to fold BatchNorm
        too when it will not be trained.
    meta : dict
        Everything in the file except the state dict: ``format``, ``format_version``,
        ``harpnet_version``, ``config``, ``optimizer`` (if saved) and the extra metadata.

    Raises
    ------
    InputDataError
        If the file is missing, not a torch file, corrupt or truncated, not a HARPNET checkpoint,
        from a newer format, holds pickled code, or its weights do not match its config.
    """
    from harpnet_cli.io.checkpoints import read_checkpoint

    return checkpoint_model(read_checkpoint(path, device), path, device)


def load_ensemble_models(path: str | Path,
                         device: str | torch.device = "cpu") -> tuple[list[Downscaler], str, dict[str, Any]]:
    """Load an ensemble file's members.

    Parameters
    ----------
    path : str or Path
        A file written by :func:`~harpnet_cli.io.ensembles.save_ensemble`.
    device : str or torch.device

    Returns
    -------
    members, mode, meta
        As :func:`ensemble_models`.

    Raises
    ------
    InputDataError
        If the file is missing, not an ensemble, corrupt, or a member's weights do not match its config.
    """
    from harpnet_cli.io.ensembles import read_ensemble

    return ensemble_models(read_ensemble(path, device), path, device)


def load_models(model_file: ModelFile, device: str | torch.device = "cpu") -> LoadedModels:
    """The model(s) of a checkpoint or ensemble file, from the one read of its bytes.

    Parameters
    ----------
    model_file : ModelFile
        The file; its payload is loaded here (once).
    device : str or torch.device
        Where the models go.

    Returns
    -------
    LoadedModels

    Raises
    ------
    InputDataError
        As :func:`load_model` or :func:`load_ensemble_models`, by the file's kind.
    """
    payload = model_file.payload(device)
    if model_file.is_ensemble:
        models, _mode, meta = ensemble_models(payload, model_file.path, device)
        return LoadedModels(models, meta, ensemble=True)
    model, meta = checkpoint_model(payload, model_file.path, device)
    return LoadedModels([model], meta, ensemble=False)


def save_half_precision(src: str | Path, dst: str | Path) -> Path:
    """Rewrite a checkpoint (or a HARPNET-E ensemble file) with float16 weights and no optimizer state.

    The trainable weights (the models' parameters) are stored as float16, halving the file; the
    buffers (normalisation statistics, BatchNorm running statistics, counters) stay as they are,
    they are small and need the precision. :func:`load_model` (and :func:`load_ensemble_models`)
    load the copy back as float32. Metadata is kept, plus ``"weights_dtype": "float16"``; the
    optimizer state is dropped.

    Parameters
    ----------
    src : str or Path
        A checkpoint written by :func:`~harpnet_cli.io.checkpoints.save_checkpoint`, or an ensemble file.
    dst : str or Path
        Destination, written atomically (may replace an existing file, but not ``src`` itself).

    Returns
    -------
    Path
        ``dst``.

    Raises
    ------
    InputDataError
        If ``src`` is not a readable checkpoint or ensemble, or a weight overflows float16
        (magnitude above 65504).
    ValueError
        If ``dst`` is ``src``.
    """
    import torch

    from harpnet_cli.core.model.wrapper import Downscaler
    from harpnet_cli.io.checkpoints import write_payload
    from harpnet_cli.io.model_files import ModelFile

    src, dst = Path(src), Path(dst)
    if dst.exists() and dst.resolve() == src.resolve():
        raise ValueError(f"{dst}: write the half-precision copy to another file")
    source = ModelFile(src)
    payload = source.payload("cpu")
    ensemble = source.is_ensemble
    states = [m["model"] for m in payload["members"]] if ensemble else [payload["model"]]
    configs = [m["config"] for m in payload["members"]] if ensemble else [payload["config"]]
    halves = []
    for config, state in zip(configs, states, strict=True):
        params = Downscaler.parameter_names(config)
        half = {}
        for name, value in state.items():
            if name in params and value.is_floating_point():
                value = value.to(torch.float16)
                if not torch.isfinite(value).all():
                    raise InputDataError(src, f"weight {name} does not fit in float16 (|w| > 65504)")
            half[name] = value.contiguous()
        halves.append(half)
    if ensemble:
        payload["members"] = [{**m, "model": h} for m, h in zip(payload["members"], halves, strict=True)]
    else:
        payload["model"] = halves[0]
    payload.pop("optimizer", None)
    payload["weights_dtype"] = "float16"
    return write_payload(dst, payload)


def model_graph(model_file: ModelFile, *, threads: int, spinning: bool = False,
                note: Callable[[str], None] | None = None) -> GraphModel:
    """The model file's exported ONNX graph, ready to run on the CPU without torch.

    The graph beside the file or in the cache (:func:`~harpnet_cli.io.onnx_graphs.candidate_graphs`)
    is used when its metadata names this file's SHA-256; otherwise the model is loaded with torch,
    exported (:func:`~harpnet_cli.core.model.onnx.export_graph`) and cached for the next run.

    Parameters
    ----------
    model_file : ModelFile
        A checkpoint (deterministic or stochastic) or an ensemble.
    threads : int
        Intra-op threads.
    spinning : bool
        Let waiting threads spin (see :class:`~harpnet_cli.core.model.onnx.GraphModel`).
    note : callable, optional
        Told, in one line, when the graph had to be exported.

    Returns
    -------
    GraphModel

    Raises
    ------
    InputDataError
        As :func:`load_models`, when the model must be loaded for the export.
    """
    from harpnet_cli.core.model.onnx import GraphModel
    from harpnet_cli.io.onnx_graphs import candidate_graphs, graph_matches, read_graph, store_graph

    sha = model_file.sha256
    for path in candidate_graphs(model_file.path, sha):
        graph = read_graph(path)
        if graph is None:
            continue
        try:
            model = GraphModel(graph, threads=threads, spinning=spinning)
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign graph is skipped, and made again below
            logging.getLogger("harpnet").debug("skipping ONNX graph %s: %s", path, exc)
            continue
        if graph_matches(model.metadata, sha):
            return model
    graph = export_model_graph(model_file)
    stored = store_graph(sha, graph)
    if note is not None:
        where = f"cached as {stored}" if stored is not None else "not cached: the cache folder is off or read-only"
        note(f"exported {model_file.path.name} to an ONNX graph for ONNX Runtime ({where})")
    return GraphModel(graph, threads=threads, spinning=spinning)


def export_model_graph(model_file: ModelFile) -> bytes:
    """Load a model file with torch and export it as an ONNX graph (see :func:`model_graph`).

    The graph's metadata names the file's SHA-256, the export's version and HARPNET's.

    Parameters
    ----------
    model_file : ModelFile
        A checkpoint or an ensemble.

    Returns
    -------
    bytes
    """
    from harpnet_cli import __version__
    from harpnet_cli.core.model.ensemble import EnsembleDownscaler
    from harpnet_cli.core.model.onnx import export_graph
    from harpnet_cli.io.onnx_graphs import GRAPH_VERSION, SOURCE_KEY, VERSION_KEY

    metadata = {SOURCE_KEY: model_file.sha256, VERSION_KEY: GRAPH_VERSION, "harpnet_version": __version__}
    loaded = load_models(model_file)  # BatchNorm unfolded: the stored (float16) weights export as they are,
    models = [m.eval() for m in loaded.models]  # and ONNX Runtime folds it when it loads the graph
    config = models[0].config
    module = EnsembleDownscaler(models).eval() if loaded.ensemble else models[0]
    static = len(config.static_inputs) + 2 * len(config.noise_scales)  # a stochastic model: two members' noise
    return export_graph(module, coarse_channels=len(config.coarse_inputs), static_channels=static,
                        tile=config.tile, ratio=config.ratio, buffer=config.buffer, metadata=metadata)


def write_graph_beside(path: str | Path) -> Path:
    """Export a model file's graph and write it beside the file (``X.pt`` → ``X.onnx``), where
    :func:`model_graph` looks first: a model shipped with its graph runs on ONNX Runtime from its
    first run, without torch and without a cache.

    Parameters
    ----------
    path : str or Path
        A checkpoint or an ensemble.

    Returns
    -------
    Path
        The graph written.
    """
    from harpnet_cli.io.model_files import ModelFile
    from harpnet_cli.io.onnx_graphs import graph_beside, write_graph

    model_file = ModelFile(path)
    return write_graph(graph_beside(model_file.path), export_model_graph(model_file))
