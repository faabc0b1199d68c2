"""A run stopped mid-epoch and resumed from its checkpoint equals the uninterrupted run."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from rnnbench.data.tbptt import TBPTTDataModule
from rnnbench.module import RNNModule
from tests.conftest import trainer_kwargs

VOCAB = 30


class Crash(RuntimeError):
    pass


class CrashAt(Callback):
    """Dies at the start of global step ``step``, as a killed job would."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Crash(f"simulated crash at step {self.step}")


class RecordLosses(Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append((trainer.global_step, float(outputs["loss"])))


def _setup(seed=0):
    L.seed_everything(seed, verbose=False)
    g = torch.Generator().manual_seed(1)
    train = torch.randint(0, VOCAB, (1201,), generator=g)
    val = torch.randint(0, VOCAB, (301,), generator=g)
    dm = TBPTTDataModule(train, val, val, batch_size=4, bptt=10)  # 30 windows / epoch
    module = RNNModule(task="lm", task_kwargs={"vocab_size": VOCAB}, cell="gru", hidden_size=12,
                       num_layers=2, optimizer="adam", lr=3e-3, clip=1.0, dropout=0.0)
    return module, dm


def _kw(tmp_path, **over):
    kw = trainer_kwargs(max_epochs=3, enable_checkpointing=True, default_root_dir=str(tmp_path))
    kw.update(over)
    return kw


@pytest.mark.parametrize("crash_step", [17, 30, 47])  # mid-epoch, at an epoch end, later
def test_resume_mid_epoch_equals_uninterrupted(tmp_path, crash_step):
    module, dm = _setup()
    full = RecordLosses()
    trainer = L.Trainer(callbacks=[full], **_kw(tmp_path / "full", enable_checkpointing=False))
    trainer.fit(module, dm)
    expected = {k: float(v) for k, v in trainer.callback_metrics.items()}
    expected_test = trainer.test(module, dm, verbose=False)[0]

    module, dm = _setup()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True, every_n_train_steps=1)
    part = RecordLosses()
    trainer = L.Trainer(callbacks=[part, CrashAt(crash_step), ckpt], **_kw(tmp_path / "a"))
    with pytest.raises(Crash):
        trainer.fit(module, dm)
    assert len(part.losses) == crash_step

    module, dm = _setup(seed=123)  # fresh process state: everything must come from the ckpt
    rest = RecordLosses()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True, every_n_train_steps=1)
    trainer = L.Trainer(callbacks=[rest, ckpt], **_kw(tmp_path / "b"))
    trainer.fit(module, dm, ckpt_path=str(tmp_path / "ck" / "last.ckpt"))
    got = {k: float(v) for k, v in trainer.callback_metrics.items()}
    got_test = trainer.test(module, dm, verbose=False)[0]

    assert part.losses + rest.losses == full.losses  # same steps, same losses, exactly
    assert got["val/ppl"] == expected["val/ppl"]
    assert got_test == expected_test


# ---------------------------------------------------------------- `rnnbench fit` in a real process
# A stopped `rnnbench fit` (SIGKILL, SIGTERM, SIGINT) resumed with --resume writes the same
# metrics.csv, row for row and value for value, as a run never stopped. The process is
# stopped at a known step by the test hook RNNBENCH_TEST_SIGNAL_AT_STEP="STEP:SIGNAL"
# (rnnbench.checkpointing.SignalAtStep): it sends the signal to the process itself right
# after that training step, before the step's own checkpoint could be saved.
ROOT = Path(__file__).resolve().parent.parent
STEPS_PER_EPOCH = 12  # trainer.limit_train_batches
EVERY = 4  # checkpoint.every_n_train_steps
TINY_FIT = {
    "data": {"dataset": "ptb", "batch_size": 4, "bptt": 8, "limit_tokens": 3000},
    # Dropout: the random state travels in the checkpoint too (same masks after a resume).
    "model": {"cell": "gru", "hidden_size": 8, "num_layers": 2, "dropout": 0.3,
              "embedding_dropout": 0.2},
    "optim": {"optimizer": "adam", "lr": 0.01},
    "trainer": {"max_epochs": 3, "accelerator": "cpu", "limit_train_batches": STEPS_PER_EPOCH,
                "limit_val_batches": 2, "limit_test_batches": 2, "log_every_n_steps": 1},
    "logging": {"progress_bar": False},
    "checkpoint": {"every_n_train_steps": EVERY},
}
TIMING = ("train/tokens_per_s",)  # wall-clock throughput: differs between any two runs


def _config(folder: Path, **trainer) -> Path:
    cfg = {**TINY_FIT, "trainer": {**TINY_FIT["trainer"], **trainer}}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _fit_cmd(config: Path, logdir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rnnbench", "fit", str(config), f"logging.dir={logdir}",
            *extra]


def _env(signal_at: str | None = None) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("RNNBENCH_TEST_SIGNAL_AT_STEP", None)
    if signal_at:
        env["RNNBENCH_TEST_SIGNAL_AT_STEP"] = signal_at
    return env


def _fit(config, logdir, *extra, signal_at=None):
    return subprocess.run(_fit_cmd(config, logdir, *extra), capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env=_env(signal_at))


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def _ckpt_info(run_dir: Path) -> dict:
    from rnnbench.checkpointing import load_checkpoint, run_info

    return run_info(load_checkpoint(run_dir / "checkpoints" / "last.ckpt"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: its folder and its metrics.csv rows."""
    folder = tmp_path_factory.mktemp("reference")
    proc = _fit(_config(folder), folder / "runs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = folder / "runs" / "tiny" / "version_0"
    return run_dir, _rows(run_dir)


def test_sigkilled_fit_resumed_twice_equals_the_uninterrupted_run(tmp_path, reference):
    _, expected = reference
    config, logdir = _config(tmp_path), tmp_path / "runs"
    run_dir = logdir / "tiny" / "version_0"

    # Killed at step 7 of epoch 0, before any validation: last.ckpt holds step 4 already,
    # and metrics.csv holds rows logged after it (steps 5 and 6), which the resume drops.
    proc = _fit(config, logdir, signal_at="7:SIGKILL")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert _ckpt_info(run_dir)["global_step"] == EVERY
    assert not (run_dir / "checkpoints" / "best.ckpt").exists()  # no validation ran yet
    steps = [int(r["step"]) for r in _rows(run_dir)]
    assert max(steps) > _ckpt_info(run_dir)["log_step"]

    # Resumed, then killed again at step 19 (epoch 1), mid-way between two saves.
    proc = _fit(config, logdir, "--resume", signal_at="19:SIGKILL")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert _ckpt_info(run_dir)["global_step"] == 16

    proc = _fit(config, logdir, "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "deleted" not in proc.stderr  # Lightning's "previous log files will be deleted"
    got = _rows(run_dir)
    assert [(r["epoch"], r["step"]) for r in got] == [(r["epoch"], r["step"]) for r in expected]
    assert got == expected  # every row and value, epoch means included
    assert sum(1 for r in got if r.get("train/loss_epoch")) == 3


def test_resuming_a_finished_run_changes_nothing(tmp_path, reference):
    run_dir = tmp_path / "runs" / "tiny" / "version_0"
    shutil.copytree(reference[0], run_dir)
    before = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in run_dir.rglob("*")}
    proc = _fit(_config(tmp_path), tmp_path / "runs", "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines() == [
        f"run {run_dir} already finished training (epoch 3, step 36); nothing to resume, "
        "nothing changed"
    ]
    assert {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in run_dir.rglob("*")} == before


def test_sigterm_mid_epoch_saves_the_step_and_exits_143(tmp_path, reference):
    config, logdir = _config(tmp_path), tmp_path / "runs"
    run_dir = logdir / "tiny" / "version_0"
    proc = _fit(config, logdir, "optim.lr=0.01", signal_at="6:SIGTERM")
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"interrupted at step 6; continue with: rnnbench fit {config} logging.dir={logdir} "
        "optim.lr=0.01 --resume"
    )
    assert "Traceback" not in proc.stderr
    assert _ckpt_info(run_dir)["global_step"] == 6  # the step it was on, not the last multiple
    proc = _fit(config, logdir, "optim.lr=0.01", "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _rows(run_dir) == reference[1]


def test_sigint_from_outside_stops_at_a_step_boundary_and_exits_130(tmp_path):
    config, logdir = _config(tmp_path, max_epochs=50), tmp_path / "runs"
    run_dir = logdir / "tiny" / "version_0"
    proc = subprocess.Popen(_fit_cmd(config, logdir), cwd=ROOT, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / "metrics.csv").exists() or len(_rows(run_dir)) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith("interrupted at step ") and line.endswith(" --resume"), err[-3000:]
    step = int(line.split()[3].rstrip(";"))
    assert _ckpt_info(run_dir)["global_step"] == step
