"""Parsing a study file's ``study:`` section into a :class:`~rnnbench.studies.spec.StudySpec`.

Every option is checked here by hand, with the one-paragraph message a user sees; the types
the parse produces live in :mod:`rnnbench.studies.spec`, which re-exports these functions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rnnbench.config import ConfigError, load_config, resolve_config_path
from rnnbench.studies.samplers import make_pruner, make_sampler
from rnnbench.studies.spec import (
    _NAME,
    DIRECTIONS,
    PRUNERS,
    SAMPLERS,
    STUDY_KEYS,
    StudySpec,
    Variant,
)
from rnnbench.studies.variant_sizes import sizes_as_overrides, split_variant_sizes


def _positive_int(value: Any, what: str, *, allow_zero: bool = False) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or value < (0 if allow_zero else 1):
        bound = "a non-negative" if allow_zero else "a positive"
        raise ConfigError(f"{what} must be {bound} integer, got {value!r}")
    return value


def _as_list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def parse_variants(raw: Any, model: Mapping[str, Any]) -> list[Variant]:
    """``study.variants`` -> the cross product (or explicit list) of :class:`Variant`.

    Either a mapping of axes, crossed::

        variants: {cells: [rnn_tanh, lstm, gru], num_layers: [1, 2], bidirectional: [false]}

    or an explicit list of cells / ``{cell, num_layers, bidirectional}`` mappings.

    Raises:
        ConfigError: Missing or unknown cells, bad depths, duplicates.
    """
    from rnnbench.cells import get_cell
    from rnnbench.cells.registry import PluginError

    if raw is None:
        raise ConfigError(
            "study.variants is missing: list the cells to compare, e.g. "
            "variants: {cells: [rnn_tanh, lstm, gru]}"
        )
    entries: list[dict[str, Any]] = []
    if isinstance(raw, Mapping):
        unknown = set(raw) - {"cells", "cell", "num_layers", "bidirectional"}
        if unknown:
            raise ConfigError(f"study.variants has unknown key(s) {sorted(unknown)}; use "
                              "cells, num_layers and bidirectional")
        cells = _as_list(raw.get("cells", raw.get("cell")), "cells")
        depths = _as_list(raw.get("num_layers", model.get("num_layers", 1)), "num_layers")
        dirs = _as_list(raw.get("bidirectional", model.get("bidirectional", False)),
                        "bidirectional")
        for cell in cells:
            for depth in depths:
                for bi in dirs:
                    entries.append({"cell": cell, "num_layers": depth, "bidirectional": bi})
    elif isinstance(raw, (list, tuple)):
        for item in raw:
            if isinstance(item, str):
                item = {"cell": item}
            if not isinstance(item, Mapping) or "cell" not in item:
                raise ConfigError(
                    f"study.variants entry {item!r} must be a cell name or a mapping with "
                    "cell (and optionally num_layers, bidirectional)"
                )
            unknown = set(item) - {"cell", "num_layers", "bidirectional"}
            if unknown:
                raise ConfigError(f"study.variants entry {dict(item)} has unknown key(s) "
                                  f"{sorted(unknown)}")
            entries.append({"num_layers": model.get("num_layers", 1),
                            "bidirectional": model.get("bidirectional", False), **item})
    else:
        raise ConfigError("study.variants must be a mapping (cells, num_layers, bidirectional) "
                          f"or a list of cells, got {raw!r}")
    if not entries:
        raise ConfigError("study.variants names no cell: give e.g. cells: [lstm, gru]")
    variants: list[Variant] = []
    for e in entries:
        try:
            get_cell(e["cell"])
        except KeyError as err:  # UnknownCellError: the message lists the known cells
            raise ConfigError(f"study.variants: {err}") from None
        except PluginError as err:
            raise ConfigError(f"study.variants: cell {e['cell']!r} failed to load: "
                              f"{err}") from None
        depth = _positive_int(e["num_layers"], f"study.variants num_layers of {e['cell']}")
        if not isinstance(e["bidirectional"], bool):
            raise ConfigError(f"study.variants bidirectional must be true or false, got "
                              f"{e['bidirectional']!r}")
        v = Variant(str(e["cell"]), depth, e["bidirectional"])
        if v in variants:
            raise ConfigError(f"study.variants lists {v.name} twice")
        variants.append(v)
    return variants


def _named_options(raw: Any, what: str, known: Sequence[str], default: str) -> dict[str, Any]:
    if raw is None:
        raw = {"name": default}
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"study.{what} must be a name or a mapping with name, got {raw!r}")
    out = dict(raw)
    name = str(out.get("name", default)).lower()
    if name in ("nop", "null", "off", "false"):
        name = "none"
    if name not in known:
        raise ConfigError(f"study.{what}: unknown {what} {out.get('name')!r}; choose one of "
                          f"{', '.join(known)}")
    out["name"] = name
    return out


def load_study(
    path: str | Path, overrides: Sequence[str] = (), *, quick: bool = False
) -> StudySpec:
    """Reads and validates a study file (a run config with a ``study:`` section).

    Overrides use the ``section.key=value`` form of ``rnnbench fit``, including
    ``study.trials_per_variant=20``.

    Raises:
        ConfigError: Anything wrong in the file; the message says what to fix.
    """
    path = resolve_config_path(path)  # a file, or a preset's name (chung2014_jsb)
    cfg = load_config(path, overrides, quick=quick)
    raw = cfg.pop("study", None)
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{path} has no study: section; a study file is a run config plus study: "
            "{variants, space, trials_per_variant, ...} (see configs/study/)"
        )
    return parse_study(raw, cfg, source=str(path), default_name=Path(path).stem)


def _parse_paper(raw: Any) -> dict[str, str] | None:
    """``paper: {source: chung2014, dataset: jsb_chorales}``: the published figures to show;
    with ``against: tcn`` every trained variant is held against that one published row.

    Only the form is checked here: the published figures belong to the report, which this
    layer does not import. ``rnnbench study run`` checks that the pair names figures before
    anything runs, and ``rnnbench report`` notes a pair it finds none for.
    """
    if raw is None:
        return None
    keys = {"source", "dataset", "against"}
    if not isinstance(raw, Mapping) or not {"source", "dataset"} <= set(raw) <= keys or not all(
            isinstance(v, str) and v for v in raw.values()):
        raise ConfigError("study.paper must be {source: ..., dataset: ...} and optionally "
                          "against: VARIANT, e.g. {source: bai2018, dataset: jsb_chorales}")
    return {k: raw[k] for k in ("source", "dataset", "against") if k in raw}


def _parse_baselines(raw: Any, variants: set[str]) -> list[dict[str, Any]]:
    from rnnbench.studies.baselines import parse_baselines

    out = parse_baselines(raw)
    clash = sorted({e["name"] for e in out} & variants)
    if clash:
        raise ConfigError(f"study.baselines {clash} share a name with a variant; a table row "
                          "needs one name")
    return out


def parse_study(
    raw: Mapping[str, Any], cfg: dict[str, Any], *, source: str | None = None,
    default_name: str = "study",
) -> StudySpec:
    """Validates a ``study:`` mapping against the composed run config ``cfg``."""
    unknown = set(raw) - set(STUDY_KEYS)
    if unknown:
        raise ConfigError(f"unknown study option(s) {sorted(unknown)}; allowed: "
                          f"{', '.join(STUDY_KEYS)}")
    name = str(raw.get("name") or default_name)
    if not _NAME.match(name):
        raise ConfigError(f"study.name {name!r} may hold only letters, digits, '_', '-' and '.'")
    cfg = copy.deepcopy(cfg)
    cfg.setdefault("logging", {})
    model = cfg.get("model", {})
    raw_variants, sizes = split_variant_sizes(raw.get("variants"))
    variants = parse_variants(raw_variants, model)
    trials = raw.get("trials_per_variant", 10)
    _positive_int(trials, "study.trials_per_variant")
    space = raw.get("space")
    if space is None or (isinstance(space, Mapping) and not space):
        raise ConfigError(
            "the search space is empty: study.space must give at least one hyper-parameter "
            "to search, e.g. lr: {low: 1.0e-4, high: 1.0e-1, log: true}"
        )
    if not isinstance(space, Mapping):
        raise ConfigError(f"study.space must be a mapping of hyper-parameters, got {space!r}")
    over = raw.get("overrides") or {}
    if not isinstance(over, Mapping) or not all(isinstance(v, Mapping) for v in over.values()):
        raise ConfigError("study.overrides must map a cell or variant name to a mapping of "
                          "search-space entries, e.g. overrides: {rnn_tanh: {lr: {high: 0.01}}}")
    cells = {v.cell for v in variants}
    names = {v.name for v in variants}
    from rnnbench.cells import list_cells

    registered = set(list_cells())
    for key in over:
        # Overrides of a registered cell that this run leaves out (e.g. narrowed on the
        # command line) are kept for when it is compared; anything else is a typo.
        if key not in cells and key not in names and key.split("-")[0] not in registered:
            raise ConfigError(
                f"study.overrides names unknown cell or variant {key!r}; the variants are "
                f"{', '.join(sorted(names))} (cells: {', '.join(sorted(cells))})"
            )
    def left_out(key: Any) -> bool:
        return _left_out(str(key), cells, registered)

    over = sizes_as_overrides(sizes, over, variants, model, space)  # per-variant hidden sizes
    sampler = _named_options(raw.get("sampler"), "sampler", SAMPLERS, "tpe")
    sampler.setdefault("seed", int(cfg.get("seed", 0) or 0))
    pruner = _named_options(raw.get("pruner"), "pruner", PRUNERS, "median")
    metric = raw.get("metric")
    if metric is not None:
        metric = str(metric)
        if not metric.startswith("val/"):
            raise ConfigError(
                f"study.metric {metric!r} must be a validation metric (val/...): trials are "
                "compared and pruned on validation data, the test split is kept for the final "
                "re-runs"
            )
    direction = raw.get("direction")
    if direction is not None:
        if str(direction).lower() not in DIRECTIONS:
            raise ConfigError(f"study.direction must be minimize or maximize, got {direction!r}")
        direction = DIRECTIONS[str(direction).lower()]
    test_metric = raw.get("test_metric")
    if test_metric is not None:
        test_metric = str(test_metric)
        if not test_metric.startswith("test/") or test_metric == "test/":
            raise ConfigError(
                f"study.test_metric {test_metric!r} must name a test-split metric, e.g. "
                "test/f1_pa (or leave it out to report the test counterpart of study.metric)"
            )
    seeds_raw = raw.get("seeds", 3)
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
        # K seeds after the search seed: the selected trial's own run is not counted again.
        _positive_int(seeds_raw, "study.seeds", allow_zero=True)
        base = int(cfg.get("seed", 0) or 0)
        seeds = list(range(base + 1, base + 1 + seeds_raw))
    elif isinstance(seeds_raw, (list, tuple)) and all(
        isinstance(s, int) and not isinstance(s, bool) for s in seeds_raw
    ):
        seeds = list(seeds_raw)
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"study.seeds lists a seed twice: {seeds}")
    else:
        raise ConfigError(f"study.seeds must be a count or a list of integers, got {seeds_raw!r}")
    storage = raw.get("storage")
    if storage is not None:
        from rnnbench.studies.storage import parse_storage_url

        storage = str(storage)
        parse_storage_url(storage)  # fails early on unknown schemes
    spec = StudySpec(
        name=name,
        config=cfg,
        variants=variants,
        space=dict(space),
        overrides={k: dict(v) for k, v in over.items()},
        trials_per_variant=trials,
        sampler=sampler,
        pruner=pruner,
        metric=metric,
        direction=direction,
        test_metric=test_metric,
        seeds=seeds,
        storage=storage,
        retries=_positive_int(raw.get("retries", 1), "study.retries", allow_zero=True),
        heartbeat_interval=_positive_int(raw.get("heartbeat_interval", 20),
                                         "study.heartbeat_interval"),
        grace_period=_positive_int(raw.get("grace_period", 90), "study.grace_period"),
        description=str(raw.get("description") or cfg.get("description") or ""),
        source=source,
        paper=_parse_paper(raw.get("paper")),
        baselines=_parse_baselines(raw.get("baselines"), names),
        population=_parse_counts(raw.get("population", 1), names, left_out, "population",
                                 auto=True),
        final_population=_parse_counts(raw.get("final_population", 1), names, left_out,
                                       "final_population", auto=False),
    )
    if spec.grace_period <= spec.heartbeat_interval:
        raise ConfigError("study.grace_period must be longer than study.heartbeat_interval")
    for v in variants:
        space_v = spec.space_for(v)
        if sampler["name"] == "grid":
            size = 1
            for values in space_v.grid().values():
                size *= len(values)
            if trials > size:
                raise ConfigError(
                    f"the grid of variant {v.name} has {size} point(s) but "
                    f"study.trials_per_variant is {trials}; a grid study runs each point once"
                )
        paths = {p.path for p in space_v.params.values()}
        if "model.hidden_size" in paths and (model.get("param_budget")
                                             or "model.param_budget" in paths):
            raise ConfigError(
                f"variant {v.name} searches model.hidden_size but model.param_budget is set, "
                "which would override it; search one of them"
            )
    make_sampler(spec, variants[0], 0)  # unknown sampler/pruner options fail here, not later
    make_pruner(spec)
    return spec


def _left_out(key: str, cells: set[str], registered: set[str]) -> bool:
    """Whether ``key`` (a variant name) names a registered cell this run does not compare at
    all: a preset's cells narrowed on the command line leave such entries in its population
    mappings, set aside then, not typos. (A key naming a run cell at another depth or
    direction, ``lstm-l2`` in a one-layer study, stays an error: it may be meant.)"""
    cell = key.split("-")[0]
    return cell in registered and cell not in cells


def _parse_counts(raw: Any, names: set[str], left_out: Callable[[Any], bool], key: str,
                  auto: bool) -> Any:
    """``study.population`` (``auto`` allowed) or ``final_population``: trials of one variant
    trained together as one batched model, for every variant or as ``{variant: count}``.

    Entries for cells the run leaves out (``left_out``) are set aside, as ``study.overrides``
    entries are; any other name that is no variant of the run is a typo.
    """
    if isinstance(raw, Mapping):
        raw = {k: v for k, v in raw.items() if k in names or not left_out(k)}
    given = raw if isinstance(raw, Mapping) else dict.fromkeys(names, raw)
    if any(k not in names for k in given) or not all(
            (auto and v == "auto") or (type(v) is int and v >= 1) for v in given.values()):
        raise ConfigError(
            f"study.{key} must be a positive integer (trials of one variant trained together "
            f"as one batched model){', auto' if auto else ''} or a mapping of variant names "
            f"({', '.join(sorted(names))}) to one, got {raw!r}")
    if not auto:  # final_population: {variant: count} of the variants trained together
        return {k: v for k, v in given.items() if v > 1}
    return dict(given) if isinstance(raw, Mapping) else raw


__all__ = ["load_study", "parse_study", "parse_variants"]
