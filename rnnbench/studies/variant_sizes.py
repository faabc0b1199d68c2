"""Per-variant hidden sizes in a study file: ``study.variants.hidden_size`` as fixed overrides.

Chung et al. (2014) compare a tanh RNN of 100 units with a GRU of 46 and an LSTM of 36
("about 20K parameters" each). A study says so with::

    variants: {cells: [rnn_tanh, gru, lstm], hidden_size: {rnn_tanh: 100, gru: 46, lstm: 36}}

or, in the list form, ``[{cell: gru, hidden_size: 46}, ...]``. Each size becomes a fixed
``hidden_size`` entry of that variant's ``study.overrides``, so the search, the final
re-runs, the stored spec and remote workers all use it with no new machinery.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from rnnbench.config import ConfigError

KEY = "hidden_size"


def _size(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"study.variants hidden_size of {where} must be a positive integer "
                          f"(units per layer and direction), got {value!r}")
    return value


def split_variant_sizes(raw: Any) -> tuple[Any, dict[str, int]]:
    """Takes the sizes out of ``study.variants``: ``(variants without them, {key: units})``.

    A key is a cell name (every variant of that cell) or a variant name (``gru-l2``).

    Raises:
        ConfigError: ``hidden_size`` is not a mapping of names to positive integers.
    """
    if isinstance(raw, Mapping) and KEY in raw:
        sizes = raw[KEY]
        if not isinstance(sizes, Mapping) or not sizes:
            raise ConfigError(
                "study.variants.hidden_size must map each cell (or variant) to its units, "
                "e.g. hidden_size: {rnn_tanh: 100, gru: 46, lstm: 36}; for one size shared "
                f"by every variant set model.hidden_size instead (got {sizes!r})"
            )
        rest = {k: v for k, v in raw.items() if k != KEY}
        return rest, {str(k): _size(v, str(k)) for k, v in sizes.items()}
    if isinstance(raw, (list, tuple)):
        rest: list[Any] = []
        found: dict[str, int] = {}
        for item in raw:
            if isinstance(item, Mapping) and KEY in item:
                item = dict(item)
                size = _size(item.pop(KEY), str(item.get("cell")))
                found[_entry_name(item)] = size
            rest.append(item)
        return rest, found
    return raw, {}


def _entry_name(item: Mapping[str, Any]) -> str:
    # The same naming as Variant.name: lstm, lstm-l2, gru-bi.
    name = str(item.get("cell"))
    if int(item.get("num_layers", 1) or 1) != 1:
        name += f"-l{item['num_layers']}"
    if item.get("bidirectional"):
        name += "-bi"
    return name


def sizes_as_overrides(
    sizes: Mapping[str, int], overrides: Mapping[str, Mapping[str, Any]],
    variants: Sequence[Any], model: Mapping[str, Any], space: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """``study.overrides`` with each size added as a fixed ``hidden_size`` entry.

    Args:
        sizes: From :func:`split_variant_sizes`.
        overrides: The file's ``study.overrides`` (not modified).
        variants: The parsed :class:`~rnnbench.studies.spec.Variant` list.
        model: The run config's ``model:`` section.
        space: The file's ``study.space``.

    Raises:
        ConfigError: A size for no variant, a variant left without one, or a clash with
            ``model.param_budget``, a searched hidden size or an override that sets one.
    """
    out = {k: dict(v) for k, v in copy.deepcopy(dict(overrides)).items()}
    if not sizes:
        return out
    from rnnbench.cells import list_cells

    names = {v.name for v in variants} | {v.cell for v in variants}
    registered = set(list_cells())
    # A registered cell this run leaves out (narrowed on the command line) keeps its size
    # for when it is compared, as study.overrides does; anything else is a typo.
    unknown = sorted(k for k in sizes if k not in names and k.split("-")[0] not in registered)
    if unknown:
        raise ConfigError(
            f"study.variants.hidden_size names {unknown}, which no variant of this study is; "
            f"the variants are {', '.join(v.name for v in variants)}"
        )
    if model.get("param_budget"):
        raise ConfigError(
            "study.variants.hidden_size gives each variant its size, but model.param_budget "
            "is also set and would override it; remove one of them"
        )
    if any(k in ("hidden_size", "model.hidden_size") for k in space):
        raise ConfigError("study.variants.hidden_size fixes each variant's size, but "
                          "study.space searches hidden_size too; remove one of them")
    missing = [v.name for v in variants if v.name not in sizes and v.cell not in sizes]
    if missing:
        raise ConfigError(
            f"study.variants.hidden_size gives no size for {', '.join(missing)}; give every "
            "variant one (a variant left out would silently take model.hidden_size)"
        )
    for key, units in sizes.items():
        entry = out.setdefault(key, {})
        if any(k in ("hidden_size", "model.hidden_size") for k in entry):
            raise ConfigError(f"study.overrides.{key} sets hidden_size and so does "
                              "study.variants.hidden_size; keep one")
        entry[KEY] = units
    return out


__all__ = ["sizes_as_overrides", "split_variant_sizes"]
