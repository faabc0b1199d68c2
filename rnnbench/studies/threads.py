"""How many torch/OpenMP threads each training process of a study gets, when the user says."""

from __future__ import annotations

import os
from typing import Any

from rnnbench.config import ConfigError


def user_threads(threads: int | None = None) -> int | None:
    """Threads per training process the user asked for: ``--threads``, else
    ``OMP_NUM_THREADS`` when it is set in the launcher's environment, else ``None`` (split the
    cores).

    Raises:
        ConfigError: Not a positive integer.
    """
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads <= 0:
            raise ConfigError(f"--threads must be a positive integer, got {threads}")
        return threads
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) <= 0:
        raise ConfigError(f"OMP_NUM_THREADS={text!r} is not a positive integer; unset it or "
                          "give --threads N")
    return int(text)


def with_threads(plan: Any, threads: int | None, cores: int, per: int) -> Any:
    """``plan`` with the user's thread count (noted when it oversubscribes the cores)."""
    if threads is None:
        return plan
    plan.threads = threads
    used = plan.count * per * threads
    if used > cores:
        plan.note = "; ".join(n for n in (plan.note, (
            f"{plan.count * per} training process(es) x {threads} thread(s) = {used} threads "
            f"on {cores} core(s): they will compete; lower --threads or --workers")) if n)
    return plan


__all__ = ["user_threads", "with_threads"]
