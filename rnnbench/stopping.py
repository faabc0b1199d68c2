"""SIGINT / SIGTERM during ``rnnbench fit``: finish the step, save it, stop with 130 / 143.

:func:`catch_stop_signals` installs the handlers for the length of a ``with`` block (the
CLI's ``fit`` only: studies handle their own signals). While training runs, a first signal
only sets :class:`StopRequest`; :class:`rnnbench.checkpointing.LastCheckpoint` lets the
current step finish, writes ``last.ckpt`` and raises :class:`TrainingInterrupted`. Before
training starts, or on a second signal, :class:`StopSignal` is raised at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_active: StopRequest | None = None


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving ``last.ckpt`` at ``step``.

    Attributes:
        signum: The signal (exit status ``128 + signum``: 130 for SIGINT, 143 for SIGTERM).
        step: Global step held by ``checkpoint``.
        checkpoint: The ``last.ckpt`` to resume from.
        finished: Training had finished; the signal came while testing.
    """

    def __init__(self, signum: int, step: int, checkpoint: str | None,
                 finished: bool = False) -> None:
        self.signum, self.step, self.checkpoint, self.finished = signum, step, checkpoint, finished
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}")

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


class StopSignal(BaseException):
    """A signal that stops at once (before training started, or a second signal)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


class StopRequest:
    """The first stop signal received, if any; ``armed`` once training can stop gracefully."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.armed = False

    def arm(self) -> None:
        self.armed = True
        # Lightning installs its own SIGTERM handler when fit/test starts (it would stop
        # after validation, mid-epoch); ours takes over again. Lightning restores ours on
        # teardown.
        _install(self.handle)

    def handle(self, signum: int, frame: Any) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if not first or not self.armed:
            raise StopSignal(signum)


def _install(handler: Any) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, handler) for s in SIGNALS}


def active_stop_request() -> StopRequest | None:
    """The request fed by the innermost :func:`catch_stop_signals`, or ``None``."""
    return _active


@contextlib.contextmanager
def catch_stop_signals() -> Iterator[StopRequest]:
    """Routes SIGINT and SIGTERM to a :class:`StopRequest` inside the block."""
    global _active
    request, outer = StopRequest(), _active
    previous = _install(request.handle)
    _active = request
    try:
        yield request
    finally:
        _active = outer
        for signum, handler in previous.items():
            signal.signal(signum, handler)
