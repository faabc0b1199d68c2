"""Baseline registry: built-ins registered by explicit import in ``rnnbench.baselines``."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from rnnbench.baselines.base import Baseline

_REGISTRY: dict[str, type[Baseline]] = {}


class UnknownBaselineError(KeyError):
    """No baseline is registered under the requested name."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def register_baseline(name: str) -> Callable[[type], type]:
    """Class decorator registering a :class:`Baseline` subclass under ``name``.

    Raises:
        TypeError: The decorated object is not a ``Baseline`` subclass.
        ValueError: ``name`` is empty or taken by another class.
    """

    def decorator(cls: type) -> type:
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"baseline name must be a non-empty string without spaces, "
                             f"got {name!r}")
        if not (isinstance(cls, type) and issubclass(cls, Baseline)):
            raise TypeError(f"cannot register {cls!r} as baseline {name!r}: baselines must "
                            "subclass rnnbench.baselines.Baseline")
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"baseline name {name!r} is already registered by "
                             f"{existing.__module__}.{existing.__qualname__}; pick another "
                             f"name for {cls.__module__}.{cls.__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def get_baseline(name: str) -> type[Baseline]:
    """The baseline class registered under ``name``.

    Raises:
        UnknownBaselineError: (a ``KeyError``) no such name; the message suggests the
            closest one and lists them all.
    """
    if isinstance(name, type) and issubclass(name, Baseline):
        return name
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(str(name), list_baselines(), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UnknownBaselineError(
        f"unknown baseline {name!r}{hint}; registered baselines are: "
        f"{', '.join(list_baselines())}. Register a new one with @register_baseline.")


def list_baselines() -> list[str]:
    """Names of every registered baseline, sorted."""
    return sorted(_REGISTRY)


__all__ = ["UnknownBaselineError", "get_baseline", "list_baselines", "register_baseline"]
