"""A model as an ONNX graph, run by ONNX Runtime: the CPU path that does not import torch.

On the CPU, ONNX Runtime runs the bundled network about twice as fast as torch (its fused,
blocked convolution kernels; ``benchmarks/bench_backends.py``), and a process that only runs an
exported graph never pays torch's import (about 2 s of a 3 s fresh CONUS step). Two halves:

* :func:`export_graph` (needs torch and the ``onnx`` package): a
  :class:`~harpnet_cli.core.model.wrapper.Downscaler`, or an
  :class:`~harpnet_cli.core.model.ensemble.EnsembleDownscaler`, as an ONNX graph whose batch and
  tile sides are free, so one graph serves every tile size
  (:func:`~harpnet_cli.core.tiling.choose_tile`). The mass-conservation layer and the input
  normalisation are in the graph: it maps the same inputs to the same outputs as the module.
* :class:`GraphModel` (needs only ``onnxruntime`` and numpy): the graph as a tile model for
  :func:`~harpnet_cli.core.inference.downscale_domain`, numpy in, numpy out.

Files are not handled here: the graph travels as bytes (:mod:`harpnet_cli.io.onnx_graphs` keeps
the bundled and cached copies).
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["GRAPH_INPUTS", "OPSET", "GraphModel", "export_graph", "runtime_available", "runtime_version"]

#: ONNX operator set of exported graphs (ONNX Runtime 1.14 and newer run it).
OPSET = 17
#: The graph's input names, in the order of :meth:`Downscaler.forward`'s arguments.
GRAPH_INPUTS = ("coarse", "static")


def runtime_available() -> bool:
    """Whether ``onnxruntime`` can be imported (found, not imported: that is left to the run)."""
    return importlib.util.find_spec("onnxruntime") is not None


def runtime_version() -> str:
    """The installed ONNX Runtime's version (imports it)."""
    import onnxruntime

    return str(onnxruntime.__version__)


def export_graph(model: torch.nn.Module, *, coarse_channels: int, static_channels: int, tile: int, ratio: int,
                 buffer: int, metadata: Mapping[str, str] | None = None) -> bytes:
    """Export a tile model to an ONNX graph with free batch and tile sides.

    Parameters
    ----------
    model : torch.nn.Module
        A Downscaler or EnsembleDownscaler on the CPU, in eval mode; prepared for inference (BatchNorm
        folded) or not. Converted in place to float32 weights in the contiguous layout.
    coarse_channels, static_channels : int
        Input channels (a stochastic model's static input also carries its members' noise: its
        channel count is free in the graph).
    tile, ratio, buffer : int
        The tile geometry of the example the export traces (any valid one: the sides are free).
    metadata : mapping, optional
        Stored in the graph's ``metadata_props`` (ONNX Runtime reads it back as the model's
        custom metadata): the source file's hash, the versions.

    Returns
    -------
    bytes
        The serialised ONNX model.
    """
    import warnings

    import onnx
    import torch

    n = tile // ratio + 2 * buffer
    coarse = torch.rand(2, coarse_channels, n, n, generator=torch.Generator().manual_seed(0))
    static = torch.rand(2, static_channels, tile, tile, generator=torch.Generator().manual_seed(1))
    model = model.float().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    with torch.no_grad():
        rank = model(coarse, static).ndim
    batch_axis = 0 if rank == 4 else 1  # (B, 1, H, W), or (M, B, 1, H, W) for members
    out_axes = {batch_axis: "batch", rank - 2: "fine_y", rank - 1: "fine_x"}
    if rank == 5:
        out_axes[0] = "members"
    buf = io.BytesIO()
    with warnings.catch_warnings():  # tracer notes on Python-side shape checks: the tests run it at other sizes
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (coarse, static), buf,  # type: ignore[arg-type]  # a stream works too
            dynamo=False, opset_version=OPSET, input_names=list(GRAPH_INPUTS), output_names=["fine"],
            do_constant_folding=True, training=torch.onnx.TrainingMode.PRESERVE,
            dynamic_axes={"coarse": {0: "batch", 2: "coarse_y", 3: "coarse_x"},
                          "static": {0: "batch", 1: "static_channels", 2: "fine_y", 3: "fine_x"},
                          "fine": out_axes})
    proto = onnx.load_from_string(buf.getvalue())
    _store_exact_half(proto)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return bytes(proto.SerializeToString())


def _store_exact_half(proto: Any) -> None:
    """Store every float32 weight that float16 holds exactly as float16, cast back by the graph.

    A model saved with float16 weights (the bundled ones) then exports at half the size, losslessly:
    ONNX Runtime folds the casts when it loads the graph, so it computes in float32 as before.
    Weights float16 cannot hold exactly (BatchNorm statistics, a float32 model) stay as they are.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(init)
        if values.size < 16:
            continue
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(half, name=f"{name}__f16"))
        casts.append(helper.make_node("Cast", [f"{name}__f16"], [name], to=TensorProto.FLOAT, name=f"{name}__cast"))
    for k, node in enumerate(casts):
        graph.node.insert(k, node)


class GraphModel:
    """An exported graph run by ONNX Runtime on the CPU: a tile model for :mod:`harpnet_cli.core.inference`.

    Parameters
    ----------
    graph : bytes
        An ONNX model from :func:`export_graph`.
    threads : int
        Intra-op threads.
    spinning : bool
        Let waiting threads spin. Off by default for the reason the torch path sets
        ``OMP_WAIT_POLICY=PASSIVE`` (:func:`harpnet_cli.devices.prefer_passive_waiting`): on a
        busy host, spinning threads take the core from the thread they wait for.

    Attributes
    ----------
    graph : bytes
        The serialised graph (another session with other options can be made from it).
    metadata : dict
        The graph's ``metadata_props``.
    """

    def __init__(self, graph: bytes, threads: int = 1, spinning: bool = False) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 4  # fatal only: a failed run raises, and the CLI words it
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self.graph = graph
        self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)

    def predict(self, coarse: np.ndarray, static: np.ndarray) -> np.ndarray:
        """Run one batch of tiles.

        Parameters
        ----------
        coarse : numpy.ndarray
            ``(B, Cc, n, n)`` float32 buffered coarse tiles.
        static : numpy.ndarray
            ``(B, Cs, tile, tile)`` float32 static (and noise) inputs.

        Returns
        -------
        numpy.ndarray
            What the exported module returns: ``(B, 1, tile, tile)``, or ``(M, B, 1, tile, tile)``.
        """
        feeds: dict[str, Any] = {
            "coarse": np.ascontiguousarray(coarse, dtype=np.float32),
            "static": np.ascontiguousarray(static, dtype=np.float32),
        }
        return np.asarray(self._session.run(None, feeds)[0])
