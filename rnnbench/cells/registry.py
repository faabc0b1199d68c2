"""Cell registry: built-ins by explicit import, plugins through entry points ``rnnbench.cells``."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata

from rnnbench.cells.base import RNNCell

ENTRY_POINT_GROUP = "rnnbench.cells"

_REGISTRY: dict[str, type[RNNCell]] = {}
_SOURCES: dict[str, str] = {}
_BROKEN: dict[str, PluginError] = {}
_ENTRY_POINTS: dict[str, metadata.EntryPoint] | None = None
_LOADING_SOURCE: list[str] = []  # stack: source to record while an entry point imports


class PluginError(ImportError):
    """A cell plugin (entry point in the ``rnnbench.cells`` group) could not be loaded."""


@dataclass(frozen=True)
class CellInfo:
    """What the registry knows about one cell name."""

    name: str
    source: str  # "built-in", "contrib", or the distribution that provides the plugin
    cls: type[RNNCell] | None
    error: str | None = None


def register_cell(name: str, *, source: str | None = None) -> Callable[[type], type]:
    """Class decorator that registers an :class:`RNNCell` subclass under ``name``.

    Args:
        name: Registry name (what configs and ``get_cell`` use), e.g. ``"mgu"``.
        source: Where the cell comes from, shown by ``rnnbench cells``. Defaults to the
            distribution whose entry point is being loaded, else ``"user"``.

    Raises:
        TypeError: The decorated object is not an ``RNNCell`` subclass.
        ValueError: ``name`` is taken by another class.
    """

    def decorator(cls: type) -> type:
        _register(name, cls, source)
        return cls

    return decorator


def _register(name: str, cls: type, source: str | None) -> None:
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"cell name must be a non-empty string without spaces, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, RNNCell)):
        raise TypeError(
            f"cannot register {cls!r} as cell {name!r}: cells must subclass "
            "rnnbench.cells.RNNCell (see the plugin how-to in the README)"
        )
    existing = _REGISTRY.get(name)
    if existing is not None:
        if _same_class(existing, cls):
            return
        raise ValueError(
            f"cell name {name!r} is already registered by {existing.__module__}."
            f"{existing.__qualname__} ({_SOURCES[name]}); pick another name for "
            f"{cls.__module__}.{cls.__qualname__}"
        )
    _REGISTRY[name] = cls
    _SOURCES[name] = source or (_LOADING_SOURCE[-1] if _LOADING_SOURCE else _source_of(cls))


def _source_of(cls: type) -> str:
    """The distribution whose entry point names ``cls`` (imported directly), else "user"."""
    target = f"{cls.__module__}:{cls.__qualname__}"
    for ep in _entry_points().values():
        if ep.value.replace(" ", "") == target:
            return _dist_name(ep)
    return "user"


def _same_class(a: type, b: type) -> bool:
    # A module imported twice (e.g. by path and by package) yields distinct but identical classes.
    return a is b or (a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__)


def _entry_points() -> dict[str, metadata.EntryPoint]:
    global _ENTRY_POINTS
    if _ENTRY_POINTS is None:
        found: dict[str, metadata.EntryPoint] = {}
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            other = found.get(ep.name)
            if other is not None and other.value != ep.value:
                _BROKEN[ep.name] = PluginError(
                    f"cell plugin name {ep.name!r} is claimed by two distributions: "
                    f"{_dist_name(other)!r} ({other.value}) and {_dist_name(ep)!r} "
                    f"({ep.value}); uninstall one of them. Every other cell still works."
                )
                continue
            found[ep.name] = ep
        _ENTRY_POINTS = found
    return _ENTRY_POINTS


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) or "an unknown distribution"
    return "contrib" if name == "rnnbench" else name


def _load_entry_point(name: str) -> None:
    ep = _entry_points()[name]
    source = _dist_name(ep)
    _LOADING_SOURCE.append(source)
    try:
        obj = ep.load()
        if not (isinstance(obj, type) and issubclass(obj, RNNCell)):
            raise TypeError(f"{ep.value} is {obj!r}, not an rnnbench.cells.RNNCell subclass")
        if name not in _REGISTRY:
            _register(name, obj, source)
        elif not _same_class(_REGISTRY[name], obj):
            raise ValueError(
                f"entry point {name!r} points at {ep.value}, but that name is already "
                f"registered by {_REGISTRY[name].__module__}.{_REGISTRY[name].__qualname__}"
            )
    except Exception as err:  # noqa: BLE001 - any plugin failure must not break the others
        _BROKEN[name] = PluginError(
            f"cell plugin {name!r} from distribution {source!r} (entry point "
            f"'{name} = {ep.value}' in group {ENTRY_POINT_GROUP!r}) failed to load: "
            f"{type(err).__name__}: {err}. Fix or uninstall that package "
            f"(pip uninstall {source}); every other cell still works."
        )
        _BROKEN[name].__cause__ = err
    finally:
        _LOADING_SOURCE.pop()


def _load_all_plugins() -> None:
    for name, ep in _entry_points().items():
        if name in _BROKEN:
            continue
        if name not in _REGISTRY:
            _load_entry_point(name)
            continue
        cls = _REGISTRY[name]
        if ep.value.replace(" ", "") != f"{cls.__module__}:{cls.__qualname__}":
            _BROKEN[name] = PluginError(
                f"cell plugin {name!r} from distribution {_dist_name(ep)!r} ({ep.value}) "
                f"clashes with the cell already registered under that name "
                f"({cls.__module__}.{cls.__qualname__}, {_SOURCES[name]}); the plugin must "
                "use another name. Every other cell still works."
            )


def get_cell(name: str) -> type[RNNCell]:
    """Returns the cell class registered under ``name``, loading its plugin if needed.

    Raises:
        PluginError: The plugin that provides ``name`` failed to import.
        KeyError: No cell of that name; the message lists the known names.
    """
    if isinstance(name, type) and issubclass(name, RNNCell):
        return name
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name not in _BROKEN and name in _entry_points():
        _load_entry_point(name)
        if name in _REGISTRY:
            return _REGISTRY[name]
    if name in _BROKEN:
        err = _BROKEN[name]
        raise PluginError(str(err)) from err.__cause__
    import difflib

    close = difflib.get_close_matches(str(name), list_cells(), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UnknownCellError(
        f"unknown cell {name!r}{hint}; registered cells are: {', '.join(list_cells())}. "
        "Register a new one with @register_cell or an entry point in group "
        f"{ENTRY_POINT_GROUP!r}."
    )


class UnknownCellError(KeyError):
    """No cell is registered under the requested name."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def list_cells() -> list[str]:
    """Names of all loadable cells (built-in, contrib and installed plugins), sorted."""
    _load_all_plugins()
    if _BROKEN:
        for err in _BROKEN.values():
            _warn_once(str(err))
    return sorted(_REGISTRY)


def cell_infos() -> Iterator[CellInfo]:
    """Every known cell name, including plugins that failed to load (with their error)."""
    names = list_cells()
    for name in names:
        yield CellInfo(name, _SOURCES[name], _REGISTRY[name])
    for name, err in sorted(_BROKEN.items()):
        yield CellInfo(name, _dist_name(_entry_points()[name]), None, str(err))


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


@contextlib.contextmanager
def _isolated_registry() -> Iterator[None]:
    """Test helper: snapshot and restore the registry and the entry-point cache."""
    global _ENTRY_POINTS
    saved = (dict(_REGISTRY), dict(_SOURCES), dict(_BROKEN), _ENTRY_POINTS, set(_WARNED))
    _ENTRY_POINTS = None
    try:
        yield
    finally:
        _REGISTRY.clear(), _REGISTRY.update(saved[0])
        _SOURCES.clear(), _SOURCES.update(saved[1])
        _BROKEN.clear(), _BROKEN.update(saved[2])
        _ENTRY_POINTS = saved[3]
        _WARNED.clear(), _WARNED.update(saved[4])
