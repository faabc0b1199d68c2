"""Every baseline on small real data, scored by the tasks' own metrics through the data
modules, against figures computed by hand from the same splits; and the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnbench.baselines import (
    Baseline,
    BaselineUnfit,
    TaskInfo,
    get_baseline,
    list_baselines,
    register_baseline,
)
from rnnbench.baselines.registry import _REGISTRY
from rnnbench.data.catalog import build_data
from rnnbench.experiment import ConfigError
from rnnbench.studies.baselines import evaluate_baseline, parse_baselines


def _evaluate(name, data, metric, *, options=None, task=None, direction="minimize", seed=1):
    cfg = {"data": data, **({"task": task} if task else {})}
    return evaluate_baseline({"name": name, "options": options or {}}, cfg, seed=seed,
                             metric=metric, direction=direction)


def _items(ds):
    return [ds[i] for i in range(len(ds))]


# ------------------------------------------------------------------ registry
def test_registry_lists_gets_and_refuses():
    assert {"persistence", "ar", "mean", "frequency", "unigram", "kneser_ney",
            "memoryless"} <= set(list_baselines())
    assert get_baseline("ar").name == "ar"
    with pytest.raises(KeyError, match=r"did you mean 'kneser_ney'.*registered baselines"):
        get_baseline("kneserney")
    with pytest.raises(ValueError, match="already registered"):
        @register_baseline("mean")
        class Other(Baseline):
            def fit(self, train, task): ...
            def predict(self, batch): ...
    with pytest.raises(TypeError, match="subclass"):
        register_baseline("not_a_baseline")(dict)
    try:
        @register_baseline("zero_test")
        class Zero(Baseline):
            tasks = ("regression",)
            def fit(self, train, task): ...
            def predict(self, batch): return torch.zeros(len(batch.inputs), 1)
        assert get_baseline("zero_test") is Zero and "zero_test" in list_baselines()
    finally:
        _REGISTRY.pop("zero_test", None)


def test_study_option_is_checked():
    assert parse_baselines(["mean", {"name": "ar", "order": [1, 2]}]) == [
        {"name": "mean", "options": {}}, {"name": "ar", "options": {"order": [1, 2]}}]
    with pytest.raises(ConfigError, match="did you mean 'persistence'"):
        parse_baselines(["persistance"])
    with pytest.raises(ConfigError, match="takes no option"):
        parse_baselines([{"name": "ar", "lags": 3}])
    with pytest.raises(ConfigError, match="twice"):
        parse_baselines(["mean", "mean"])


def test_a_baseline_refuses_a_task_it_cannot_score():
    with pytest.raises(ConfigError, match="persistence.*forecasts the next value"):
        _evaluate("persistence", {"dataset": "adding", "T": 20, "n": 200}, "val/mse")
    with pytest.raises(ConfigError, match="scores the lm task"):
        _evaluate("unigram", {"dataset": "adding", "T": 20, "n": 200}, "val/mse")


# ------------------------------------------------------------------ regression, copy
def test_mean_on_the_adding_problem():
    data = {"dataset": "adding", "T": 50, "n": 2000, "batch_size": 64}
    r = _evaluate("mean", data, "val/mse")
    dm = build_data(data, seed=1).datamodule
    train = torch.stack([y for _, y in _items(dm.train)]).double()
    test = torch.stack([y for _, y in _items(dm.test)]).double()
    mean = train.mean()
    assert math.isclose(r["metrics"]["test/mse"], float(((test - mean) ** 2).mean()),
                        rel_tol=1e-5)
    assert math.isclose(r["metrics"]["test/mae"], float((test - mean).abs().mean()),
                        rel_tol=1e-5)
    # The sum of two U(0, 1) has variance 1/6: what predicting the mean reaches.
    assert abs(r["metrics"]["test/mse"] - 1 / 6) < 0.03
    assert r["num_parameters"] == 1 and r["state"] == "COMPLETE"


def test_memoryless_reaches_exactly_10_ln8_over_T_plus_20():
    for T in (10, 30):
        r = _evaluate("memoryless", {"dataset": "copy", "T": T, "n": 300, "batch_size": 32},
                      "val/ce")
        for stage in ("val", "test"):
            assert math.isclose(r["metrics"][f"{stage}/ce"], 10 * math.log(8) / (T + 20),
                                rel_tol=1e-5)


# ------------------------------------------------------------------ music
def test_key_frequency_on_jsb():
    data = {"dataset": "jsb_chorales", "limit_pieces": 20, "batch_size": 4}
    r = _evaluate("frequency", data, "val/nll")
    from rnnbench.data.datasets.music import load_music

    pieces = load_music("jsb_chorales")
    train = torch.cat([p[1:] for p in pieces["train"][:20]]).double()  # target frames
    p = (train.sum(0) + 0.5) / (len(train) + 1)  # (88,)
    test = torch.cat([x[1:] for x in pieces["test"][:20]]).double()
    nll = -(test * p.log() + (1 - test) * (1 - p).log()).sum(1).mean()
    assert math.isclose(r["metrics"]["test/nll"], float(nll), rel_tol=1e-4)
    assert r["num_parameters"] == 88


# ------------------------------------------------------------------ forecasting / anomaly
HAI = {"dataset": "hai_synthetic", "n_steps": 4000, "window": 30, "n_attacks": 4}


def test_persistence_on_hai():
    r = _evaluate("persistence", HAI, "val/mse")
    dm = build_data(HAI, seed=1).datamodule
    test = dm.test
    prev = test.data[test.target_rows - 1].double()  # (N, D)
    now = test.data[test.target_rows].double()
    assert math.isclose(r["metrics"]["test/mse"], float(((prev - now) ** 2).mean()),
                        rel_tol=1e-5)
    assert 0.0 <= r["metrics"]["test/f1_pa"] <= 1.0 and "test/threshold" in r["metrics"]


def test_ar_fits_by_least_squares_and_picks_its_order_on_validation():
    r = _evaluate("ar", HAI, "val/mse")
    chosen = r["options"]["order"]
    values = {c["options"]["order"]: c["value"] for c in r["candidates"]}
    assert chosen == min(values, key=values.get) and max(values) <= 30  # window 30
    assert math.isclose(r["metrics"]["val/mse"], values[chosen], rel_tol=1e-9)
    # By hand: sensor 0, AR(2) with intercept on the training windows.
    from rnnbench.baselines import AutoRegressive

    dm = build_data(HAI, seed=1).datamodule
    model = AutoRegressive(order=2)
    model.fit(dm.train_dataloader(), TaskInfo("anomaly", {"input_dim": 8}))
    items = _items(dm.train)
    x = np.stack([b.inputs[-2:, 0].numpy() for b in items]).astype(np.float64)
    y = np.array([float(b.targets[0]) for b in items])
    design = np.column_stack([x, np.ones(len(x))])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    assert np.allclose(model.coef[0].numpy(), coef, atol=1e-8)
    assert model.num_parameters == 8 * 3
    with pytest.raises(BaselineUnfit, match="needs 31 input steps"):
        AutoRegressive(order=31).fit(dm.train_dataloader(), TaskInfo("anomaly", {}))


# ------------------------------------------------------------------ language models
PTB = {"dataset": "ptb", "limit_tokens": 4000, "batch_size": 4, "bptt": 20,
       "compact_vocab": True}


def test_unigram_and_kneser_ney_on_ptb():
    uni = _evaluate("unigram", PTB, "val/ppl")
    dm = build_data(PTB, seed=1).datamodule
    train, test = dm.streams["train"], dm.streams["test"]
    vocab = int(train.max()) + 1
    rows = (len(train) - 1) // 4
    counts = np.bincount(train[1:4 * rows + 1].numpy(), minlength=vocab)  # the targets
    alpha = 0.0 if counts.all() else 1.0  # add-one only when a word is never a target
    assert uni["options"] == {"alpha": alpha}
    log_p = np.log((counts + alpha) / (counts.sum() + alpha * vocab))
    scored = test[1:4 * ((len(test) - 1) // 4) + 1].numpy()  # what the stream layout scores
    assert math.isclose(uni["metrics"]["test/ppl"], float(np.exp(-log_p[scored].mean())),
                        rel_tol=1e-4)
    kn = _evaluate("kneser_ney", PTB, "val/ppl", options={"order": 3})
    assert kn["options"] == {"order": 3, "modified": True, "discount": None}
    assert math.isfinite(kn["metrics"]["test/ppl"])
    assert kn["metrics"]["test/ppl"] < uni["metrics"]["test/ppl"]
    assert kn["published_as"] == "kn3"
