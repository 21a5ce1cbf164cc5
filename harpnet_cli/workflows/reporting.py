"""The reporting seam: workflows talk to the user only through a :class:`Reporter`.

The CLI passes a Rich implementation; tests and library callers get :class:`NullReporter` (or a
recording fake), so workflows and core never import a progress library.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable


@runtime_checkable
class Reporter(Protocol):
    """What a workflow may say while it runs."""

    def info(self, message: str) -> None:
        """A line of information (hidden by ``--quiet``)."""

    def warning(self, message: str) -> None:
        """Something the user should know about the result (shown unless ``--quiet``)."""

    def progress(self, description: str, total: int) -> contextlib.AbstractContextManager[Callable[[int], None]]:
        """A progress bar of ``total`` units; the context yields ``advance(n)``."""
        ...


class NullReporter:
    """A reporter that says nothing but remembers warnings (for library use and tests)."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.infos: list[str] = []

    def info(self, message: str) -> None:
        """Record ``message``."""
        self.infos.append(message)

    def warning(self, message: str) -> None:
        """Record ``message``."""
        self.warnings.append(message)

    @contextlib.contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A progress context that does nothing."""
        yield lambda n: None


class TrainingProgress(Protocol):
    """Progress of a training run: an epoch bar and a batch bar (see :class:`TrainingReporter`)."""

    def start_epoch(self, epoch: int, batches: int) -> None:
        """A new epoch (1-based) of ``batches`` batches begins."""

    def advance(self, batches: int, loss: float, samples_per_s: float) -> None:
        """``batches`` more batches done; the running mean loss and the throughput so far."""


@runtime_checkable
class TrainingReporter(Reporter, Protocol):
    """Optional richer hooks for ``harpnet train``.

    A plain :class:`Reporter` works too: the workflow then uses :meth:`Reporter.progress` per
    epoch and one :meth:`Reporter.info` line per epoch.
    """

    def training(
        self, first_epoch: int, epochs: int
    ) -> contextlib.AbstractContextManager[TrainingProgress]:
        """Progress bars for epochs ``first_epoch..epochs`` (1-based, inclusive)."""
        ...

    def log_epoch(self, line: str) -> None:
        """One plain summary line per finished epoch (shown even without a terminal)."""
