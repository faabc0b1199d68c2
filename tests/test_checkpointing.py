"""Checkpoints: atomic saves, plain contents, safe loads, and bad checkpoints at the CLI."""

import dataclasses
import enum
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torchmetrics

from rnnbench.checkpointing import (
    CheckpointError,
    SafeCheckpointIO,
    UnsafeCheckpointError,
    atomic_save,
    load_checkpoint,
    to_plain,
)
from rnnbench.module import RNNModule, load_metric_state, metric_state
from tests.test_resume import ROOT, _config, _env, _fit

MARKER_CODE = "touch {marker}"


class _RunsCode:
    """Unpickling this (unsafely) would run a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (MARKER_CODE.format(marker=self.marker),))


def _plain_ckpt():
    return {"state_dict": {"w": torch.arange(1000.0)}, "epoch": 0, "global_step": 3}


def _write_bad(path: Path, kind: str, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        torch.save(_plain_ckpt(), path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "callable":
        torch.save({**_plain_ckpt(), "x": _RunsCode(marker)}, path)
    elif kind == "bare_pickle":
        path.write_bytes(pickle.dumps({"x": _RunsCode(marker)}, protocol=4))
    else:
        raise AssertionError(kind)


# ---------------------------------------------------------------- loading
@pytest.mark.parametrize("kind,error,words", [
    ("empty", CheckpointError, "is unreadable: the file is empty"),
    ("truncated", CheckpointError, "is unreadable: the file is truncated or corrupted"),
    ("garbage", CheckpointError, "is unreadable: it is not a PyTorch checkpoint"),
    ("callable", UnsafeCheckpointError, "carries pickled Python code (posix.system)"),
    ("bare_pickle", UnsafeCheckpointError, "carries pickled Python code (posix.system)"),
])
def test_load_checkpoint_names_the_file_and_never_runs_its_code(tmp_path, kind, error, words):
    path, marker = tmp_path / "last.ckpt", tmp_path / "MARKER"
    _write_bad(path, kind, marker)
    with pytest.raises(error) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and words in message
    assert "weights_only" not in message
    assert not marker.exists()
    if error is UnsafeCheckpointError:
        assert "\n" not in message


def test_checkpoint_io_loads_weights_only_whatever_it_is_asked(tmp_path):
    path, marker = tmp_path / "evil.ckpt", tmp_path / "MARKER"
    _write_bad(path, "callable", marker)
    with pytest.raises(UnsafeCheckpointError):
        SafeCheckpointIO().load_checkpoint(path, weights_only=False)
    assert not marker.exists()


# ---------------------------------------------------------------- saving
class _Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class _Spec:
    n: int
    where: Path


def test_to_plain_makes_what_a_safe_load_reads_back(tmp_path):
    obj = {"a": np.int64(3), "b": np.float32(0.5), "c": np.arange(3), "d": Path("x/y"),
           "e": _Color.RED, "f": _Spec(2, Path("z")), "g": {3, 1}, "h": (1, [np.bool_(True)])}
    plain = to_plain(obj)
    atomic_save(plain, tmp_path / "c.ckpt")
    back = torch.load(tmp_path / "c.ckpt", weights_only=True)
    assert back["a"] == 3 and type(back["a"]) is int
    assert back["b"] == 0.5 and torch.equal(back["c"], torch.arange(3))
    assert back["d"] == "x/y" and back["e"] == "red" and back["f"] == {"n": 2, "where": "z"}
    assert back["g"] == [1, 3] and back["h"] == (1, [True])


def test_to_plain_names_what_cannot_be_saved():
    with pytest.raises(CheckpointError, match=r"checkpoint\.hyper_parameters\.fn holds a "
                       r"builtins\.builtin_function_or_method"):
        to_plain({"hyper_parameters": {"fn": len}})


def test_a_kill_while_writing_leaves_the_previous_checkpoint_whole(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_save({"state_dict": {"w": torch.ones(3)}, "v": 1}, path)
    # A child process starts writing a new version and is SIGKILLed before it is complete.
    child = (
        "import os, signal, torch\n"
        "from rnnbench.checkpointing import atomic_save\n"
        "real = torch.save\n"
        "def half(obj, f):\n"
        "    f.write(b'PK' + os.urandom(10000))\n"
        "    f.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "torch.save = half\n"
        f"atomic_save({{'v': 2}}, {str(path)!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", child], cwd=ROOT, env=_env(), timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(path)["v"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name != "last.ckpt"]  # the torn temp file


# ---------------------------------------------------------------- what the module saves
def test_training_metrics_travel_in_the_checkpoint():
    def module():
        L.seed_everything(0, verbose=False)
        return RNNModule(task="classification", task_kwargs={"input_dim": 3, "num_classes": 4},
                         cell="gru", hidden_size=5)

    a = module()
    out, targets = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    a.task.update_metrics("train", out, targets, None, {})
    a._rt.loss_sum, a._rt.units_sum = torch.tensor(7.5), 6.0
    ckpt = {}
    a.on_save_checkpoint(ckpt)
    ckpt = to_plain(ckpt)
    b = module()
    b.on_load_checkpoint(ckpt)
    assert b.task.compute_metrics("train") == a.task.compute_metrics("train")
    assert float(b._rt.loss_sum) == 7.5 and b._rt.units_sum == 6.0


def test_private_names_we_rely_on_still_exist():
    # rnnbench.checkpointing reads Lightning's logging step; rnnbench.module sets the
    # torchmetrics update count. If either disappears, resuming must be revisited.
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert isinstance(trainer.fit_loop.epoch_loop._batches_that_stepped, int)
    metric = torchmetrics.MeanMetric()
    metric.update(torch.tensor([1.0, 3.0]))
    other = torchmetrics.MeanMetric()
    load_metric_state(other, metric_state(metric))
    assert other.update_count == metric.update_count == 1
    assert float(other.compute()) == 2.0


# ---------------------------------------------------------------- through the CLI
@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage", "callable"])
def test_fit_resume_from_a_bad_checkpoint_exits_2_and_writes_nothing(tmp_path, kind):
    config, logdir, marker = _config(tmp_path), tmp_path / "runs", tmp_path / "MARKER"
    run_dir = logdir / "tiny" / "version_0"
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    _write_bad(ckpt, kind, marker)
    (run_dir / "metrics.csv").write_text("epoch,step,train/loss\n0,0,9.2\n0,1,9.1\n")
    before = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")}
    proc = _fit(config, logdir, "--resume")
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr.strip()
    assert "Traceback" not in err and "weights_only" not in err
    assert len(err.splitlines()) == 1 and err.startswith("rnnbench fit: error: ")
    assert str(ckpt) in err
    assert ("refusing checkpoint" if kind == "callable" else "is unreadable") in err
    assert not marker.exists()
    assert {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")} == before


def test_diverging_fit_is_one_paragraph_exit_3_and_leaves_no_empty_run_folder(tmp_path):
    config, logdir = _config(tmp_path, log_every_n_steps=12), tmp_path / "runs"
    proc = _fit(config, logdir, "optim.optimizer=sgd", "optim.lr=3.0e+38")
    assert proc.returncode == 3, proc.stderr[-3000:]
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert err.startswith("rnnbench fit: error: training loss became")
    assert not logdir.exists()  # no runs/tiny/version_0, nor the folders above it


def test_to_plain_keeps_state_dict_versions(tmp_path):
    state = torch.nn.BatchNorm1d(3).state_dict()
    atomic_save(to_plain({"state_dict": state}), tmp_path / "c.ckpt")
    back = torch.load(tmp_path / "c.ckpt", weights_only=True)["state_dict"]
    assert back._metadata == state._metadata and list(back) == list(state)
