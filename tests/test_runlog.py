"""The run folder's logs: metrics.csv and TensorBoard continue on resume, nothing doubled."""

import csv

import pytest

from rnnbench.runlog import RunCSVLogger, RunFolder, training_finished


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_resume_keeps_rows_through_the_checkpoint_and_drops_later_ones(tmp_path):
    first = RunCSVLogger(tmp_path)
    for step in range(8):
        first.log_metrics({"train/loss": float(step)}, step=step)
    assert len(_rows(tmp_path / "metrics.csv")) == 8  # written as they come, no flush needed

    resumed = RunCSVLogger(tmp_path, keep_through_step=4)
    resumed.log_metrics({"train/loss": 50.0}, step=5)
    resumed.log_metrics({"val/ppl": 9.0}, step=5)  # a new column: the file is rewritten
    rows = _rows(tmp_path / "metrics.csv")
    assert [(r["step"], r["train/loss"], r["val/ppl"]) for r in rows] == [
        *[(str(s), str(float(s)), "") for s in range(5)], ("5", "50.0", ""), ("5", "", "9.0")]
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_new_run_in_a_used_folder_starts_a_new_file(tmp_path):
    (tmp_path / "metrics.csv").write_text("step,train/loss\n0,1.0\n")
    logger = RunCSVLogger(tmp_path)
    logger.log_metrics({"train/loss": 2.0}, step=0)
    assert [r["train/loss"] for r in _rows(tmp_path / "metrics.csv")] == ["2.0"]


def test_tensorboard_resume_purges_steps_after_the_checkpoint(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (first,) = RunFolder(tmp_path).loggers({"csv": False, "tensorboard": True})
    for step in range(10):
        first.log_metrics({"train/loss": float(step)}, step=step)
    first.finalize("success")
    info = {"log_step": 4, "global_step": 5, "epochs_done": 0}
    (resumed,) = RunFolder(tmp_path, ckpt_path="last.ckpt", info=info).loggers(
        {"csv": False, "tensorboard": True})
    for step in range(5, 8):
        resumed.log_metrics({"train/loss": 100.0 + step}, step=step)
    resumed.finalize("success")
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [
        *[(s, float(s)) for s in range(5)], (5, 105.0), (6, 106.0), (7, 107.0)]


@pytest.mark.parametrize("info,trainer,done", [
    ({"global_step": 36, "epochs_done": 3}, {"max_epochs": 3}, True),
    ({"global_step": 30, "epochs_done": 2}, {"max_epochs": 3}, False),
    ({"global_step": 30, "epochs_done": 2}, {"max_epochs": 9, "max_steps": 30}, True),
    ({"global_step": 30, "epochs_done": 3}, {"max_epochs": -1, "max_steps": 50}, False),
])
def test_training_finished(info, trainer, done):
    assert training_finished(info, trainer) is done
