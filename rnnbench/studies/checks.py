"""What ``rnnbench study run`` checks before anything is written (the pre-flight).

Every variant is built on the meta device with a representative value of each searched
parameter, then once more with each end of each searched range and each listed choice, so
that a range no trial could run with (``task.dropout: {low: 0.2, high: 1.5}``, a hidden size
below a cell's minimum) is one message before the study starts instead of failed trials.
"""

from __future__ import annotations

from typing import Any

from rnnbench.config import ConfigError
from rnnbench.studies.spec import StudySpec, Variant
from rnnbench.studies.trials import trial_config

BUILD_ERRORS = (ValueError, TypeError, KeyError)


def _base_values(spec: StudySpec, variant: Variant) -> dict[str, Any]:
    # A representative value per parameter: enough to build the model and check the config.
    out = {}
    for name, p in spec.space_for(variant).params.items():
        if p.kind == "fixed":
            out[name] = p.value
        elif p.kind == "categorical":
            out[name] = p.choices[0]
        else:
            out[name] = p.low
    return out


def _meta_module(cfg: dict[str, Any], bundle: Any):
    """The model of ``cfg`` on the meta device: counts parameters without weights or data."""
    from rnnbench.train import build_module

    return build_module(cfg, bundle, device="meta")


def _probe_metrics(cfg: dict[str, Any]) -> set[str]:
    """Metric names one real validation batch logs (for metrics no task declares)."""
    import lightning as L

    from rnnbench.train import build

    module, datamodule, _ = build(cfg)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=1, use_distributed_sampler=False)
    trainer.validate(module, datamodule=datamodule, verbose=False)
    return set(trainer.callback_metrics)


def _check_ranges(spec: StudySpec, variant: Variant, base: dict[str, Any], bundle: Any) -> None:
    """Builds ``variant`` at each end of each searched range and with each choice.

    Raises:
        ConfigError: Naming the parameter, its range, the value and why it is refused.
    """
    for p in spec.space_for(variant).searched:
        for value in p.extremes():
            if value == base[p.name]:
                continue  # built already
            try:
                _meta_module(trial_config(spec, variant, {**base, p.name: value}, seed=0),
                             bundle)
            except (ConfigError, *BUILD_ERRORS) as err:
                reason = str(err).strip(chr(34)).rstrip(".")
                fix = (f"drop {value!r} from {p.name}'s choices" if p.kind == "categorical"
                       else f"narrow {p.name}'s range so that every value in it is valid")
                raise ConfigError(
                    f"variant {variant.name}: the search space gives {p.name} "
                    f"{p.describe()}, and a trial drawing {value!r} could not run: {reason}; "
                    f"{fix} (study.space, or the variant's study.overrides)"
                ) from None


def _at_low_end(spec: StudySpec, variant: Variant, base: dict[str, Any]) -> str:
    """Where the representative build's searched values came from, for its error message."""
    searched = [p.name for p in spec.space_for(variant).searched]
    if not searched:
        return ""
    shown = ", ".join(f"{n}={base[n]!r}" for n in searched)
    return f" (built with each searched parameter at the low end of its range or its first " \
           f"choice: {shown})"


def preflight(spec: StudySpec) -> dict[str, dict[str, Any]]:
    """Checks what can be checked before anything is written, and fills in the defaults.

    Builds every variant on the meta device (unknown options, a budget too small for a cell,
    a bidirectional model on a next-step task fail here), again at the ends of every searched
    range and with every choice (a range no trial could run with fails here), resolves the
    hidden size a ``param_budget`` gives each variant, checks that the task logs the metric,
    and sets ``spec.metric``/``spec.direction`` from the task when the file gives none (the
    task defines one direction: its monitored metric's).

    Returns:
        ``{variant: {"hidden_size", "num_parameters"}}`` (or ``{"note": "searched"}`` when the
        space searches the size).

    Raises:
        ConfigError: What to fix.
    """
    import torch

    from rnnbench.data.catalog import build_data

    try:
        bundle = build_data(spec.config["data"], seed=int(spec.config.get("seed", 0) or 0))
    except (ValueError, FileNotFoundError, OSError) as err:
        raise ConfigError(f"data: {err}") from None
    sizes: dict[str, dict[str, Any]] = {}
    first = None
    for v in spec.variants:
        base = _base_values(spec, v)
        try:
            cfg = trial_config(spec, v, base, seed=0)
            module = _meta_module(cfg, bundle)
        except (ConfigError, *BUILD_ERRORS) as err:
            raise ConfigError(f"variant {v.name}: {str(err).strip(chr(34))}"
                              f"{_at_low_end(spec, v, base)}") from None
        _check_ranges(spec, v, base, bundle)
        searched = {p.path for p in spec.space_for(v).searched}
        if searched & {"model.hidden_size", "model.param_budget", "model.embedding_size"}:
            sizes[v.name] = {"note": "searched"}
        else:
            sizes[v.name] = {"hidden_size": int(module.hparams.hidden_size),
                             "num_parameters": int(module.num_parameters())}
        first = first or (module, cfg)
    module, cfg = first
    if spec.metric is None:
        spec.metric = module.monitor
    logged = {f"val/{k}" for k in module.task.summarize(torch.tensor(1.0)).keys()}
    logged.add(module.monitor)
    # The validation and test passes log the same names: test/x exists when val/x does.
    wanted = {spec.metric: "study.metric"}
    if spec.test_metric:
        wanted["val/" + spec.test_metric.split("/", 1)[1]] = "study.test_metric"
    if not set(wanted) <= logged:
        logged |= {k for k in _probe_metrics(cfg) if k.startswith("val/")}
    for name, option in wanted.items():
        if name not in logged:
            stage = "test/" if option == "study.test_metric" else "val/"
            shown = sorted(stage + k.split("/", 1)[1] for k in logged)
            given = spec.test_metric if option == "study.test_metric" else spec.metric
            raise ConfigError(
                f"{option} {given!r} is not logged by the {bundle.task!r} task of "
                f"data set {spec.config['data'].get('dataset')!r}; it logs "
                f"{', '.join(shown)}"
            )
    spec.direction = spec.direction or _direction(spec.metric, module)
    return sizes


def _direction(metric: str, module: Any) -> str:
    """The direction of ``metric`` as the task defines it: the task knows the direction of
    the metric it monitors (``Task.mode``) and of no other, so any other needs
    ``study.direction``."""
    if metric == module.monitor:
        return "minimize" if module.monitor_mode == "min" else "maximize"
    raise ConfigError(
        f"study.metric {metric!r} is not the metric the {module.task.name!r} task monitors "
        f"({module.monitor}, {'minimized' if module.monitor_mode == 'min' else 'maximized'}), "
        "so rnnbench does not know whether to minimize or maximize it; set "
        "study.direction=minimize or study.direction=maximize"
    )


__all__ = ["preflight"]
