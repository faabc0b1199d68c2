"""A trained model's task metrics on a data split, measured by a real Lightning Trainer."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnbench.inference.loading import InferenceError, LoadedModel, default_data

SPLITS = ("test", "val")
_OVERRIDABLE = ("data.", "trainer.")


@dataclass
class EvalResult:
    """What :func:`evaluate` measured.

    Attributes:
        split: ``"test"`` or ``"val"``.
        metrics: ``stage/name`` -> value, e.g. ``{"test/nll": 4.1, "test/ppl": 60.3}``.
        dataset: The data set's description.
        checkpoint: The checkpoint evaluated.
    """

    split: str
    metrics: dict[str, float]
    dataset: str
    checkpoint: str
    data: dict[str, Any] = field(default_factory=dict)


def data_section(data: str) -> dict[str, Any]:
    """The ``data:`` section ``--data`` names: a YAML file, or a config of ``configs/data/``.

    A YAML file may hold the section itself (``dataset: ...``, as ``configs/data/*.yaml``) or
    a whole run config with a ``data:`` key.

    Raises:
        InferenceError: Neither a YAML file nor a known ``configs/data`` name.
    """
    from rnnbench.config import config_root, did_you_mean, read_yaml

    path = Path(data)
    if path.suffix in (".yaml", ".yml") or path.exists():
        raw = read_yaml(path)  # ConfigError names the file when it is missing or not YAML
    else:
        known = sorted(p.stem for p in (config_root() / "data").glob("*.yaml"))
        if data not in known:
            raise InferenceError(
                f"--data {data}: neither a YAML file nor a data config"
                f"{did_you_mean(data, known)}; known data configs: {', '.join(known)}"
            )
        raw = read_yaml(config_root() / "data" / f"{data}.yaml")
    section = raw.get("data", raw)
    if not isinstance(section, dict) or "dataset" not in section:
        raise InferenceError(f"--data {data}: it holds no data section with a dataset: key "
                             "(like configs/data/ptb.yaml)")
    return section


def eval_config(loaded: LoadedModel, data: str | None = None,
                overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The run's config with ``--data`` and ``data.*`` / ``trainer.*`` overrides applied.

    Raises:
        InferenceError: An override of another section, or no data set to evaluate on.
        rnnbench.config.ConfigError: An override or data option the schema refuses.
    """
    from rnnbench.config import deep_merge, parse_override, validate_config

    cfg = copy.deepcopy(loaded.cfg) if loaded.cfg is not None else {}
    cfg.pop("quick", None)
    section = data_section(data) if data else default_data(loaded)
    if section is None:
        raise InferenceError(
            f"{loaded.checkpoint} is a bare checkpoint of a {loaded.task_name} model with no "
            "run folder config beside it: name the data with --data (e.g. --data jsb_chorales "
            "or --data my_data.yaml)"
        )
    cfg["data"] = section
    for text in overrides:
        if not text.startswith(_OVERRIDABLE):
            raise InferenceError(
                f"override {text!r}: evaluation takes data.KEY=VALUE and trainer.KEY=VALUE "
                "overrides only (the model is fixed by its checkpoint)"
            )
        cfg = deep_merge(cfg, parse_override(text))
    return validate_config(cfg)


def build_eval_data(loaded: LoadedModel, cfg: dict[str, Any]) -> Any:
    """The data bundle of ``cfg``, checked to feed the task the model was trained for.

    Raises:
        InferenceError: The data set feeds another task, or other sizes (vocabulary, keys).
    """
    from rnnbench.data.catalog import build_data

    name = cfg["data"]["dataset"]
    try:
        bundle = build_data(cfg["data"], seed=int(cfg.get("seed", 0)))
    except (ValueError, KeyError) as err:  # e.g. a stream too short for the batch size
        raise InferenceError(f"data {name}: {str(err).strip(chr(34))}") from None
    if bundle.task != loaded.task_name:
        raise InferenceError(
            f"data set {name} feeds task {bundle.task}, but the model was trained for task "
            f"{loaded.task_name}; pick a data set of that task with --data"
        )
    trained = loaded.task_kwargs
    for key, value in bundle.task_kwargs.items():
        if key in trained and trained[key] != value:
            raise InferenceError(
                f"data set {name} gives {key}={value!r}, but the model was trained with "
                f"{key}={trained[key]!r}; evaluate it on data with the same {key}"
            )
    return bundle


def _loader(datamodule: Any, split: str) -> Any:
    try:
        loader = datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()
    except RuntimeError:  # a sequence data module built without that split
        return None
    return loader if loader is not None and len(loader) else None


def evaluate(
    loaded: LoadedModel,
    split: str = "test",
    *,
    data: str | None = None,
    overrides: Sequence[str] = (),
    accelerator: str = "auto",
    progress: bool = False,
) -> EvalResult:
    """Runs the model over one split with ``trainer.test`` / ``trainer.validate``.

    Streaming tasks carry the hidden state across the split's windows from a zero start, as
    during training's evaluation passes; the metrics are the task's own (``nll``, ``ppl`` or
    ``bpc``, accuracy, anomaly scores...).

    Args:
        loaded: From :func:`~rnnbench.inference.load_model`.
        split: ``"test"`` or ``"val"``.
        data: ``--data``: a data config name or YAML file (default: the run's data).
        overrides: ``data.KEY=VALUE`` / ``trainer.KEY=VALUE`` (e.g.
            ``trainer.limit_test_batches=10``).
        accelerator: Lightning accelerator (``auto``, ``cpu``, ``gpu``); one device.
        progress: Show Lightning's progress bar.

    Raises:
        InferenceError: Unknown or missing split, data of another task.
    """
    import lightning as L

    from rnnbench.checkpointing import SafeCheckpointIO

    if split not in SPLITS:
        raise InferenceError(f"--split must be test or val, got {split!r}")
    cfg = eval_config(loaded, data, overrides)
    bundle = build_eval_data(loaded, cfg)
    dm = bundle.datamodule
    if _loader(dm, split) is None:
        raise InferenceError(
            f"data set {cfg['data']['dataset']} has no {split} split here (empty or absent "
            f"with these data options); pick the other one with --split "
            f"{'val' if split == 'test' else 'test'}, or other data with --data"
        )
    trainer_over = {text.split("=", 1)[0][len("trainer."):].split(".")[0]
                    for text in overrides if text.startswith("trainer.")}
    kwargs = {k: v for k, v in cfg["trainer"].items() if k in trainer_over or k == "precision"}
    trainer = L.Trainer(
        **{**kwargs, "accelerator": accelerator, "devices": 1},
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        use_distributed_sampler=not loaded.module.task.streaming,
        plugins=[SafeCheckpointIO()],
    )
    run = trainer.validate if split == "val" else trainer.test
    rows = run(loaded.module, datamodule=dm, verbose=False)
    metrics = {k: float(v) for row in rows for k, v in row.items()}
    loaded.module.cpu().eval()
    return EvalResult(split, metrics, bundle.description or cfg["data"]["dataset"],
                      str(loaded.checkpoint), cfg["data"])
