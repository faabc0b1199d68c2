"""The real command with worker processes: exact budgets, SIGKILL, Ctrl-C, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from optuna.trial import TrialState

from rnnbench.studies.pool import available_cores

from .conftest import ROOT, TINY, rnnbench, states

# Slower trials (a few seconds) so that a signal lands mid-trial; two variants, no re-runs.
SLOW = ["data.limit_pieces=40", "trainer.max_epochs=3", "trainer.limit_val_batches=null",
        "study.variants=[lstm, gru]", "study.trials_per_variant=2", "study.seeds=0"]


def _journal(tmp_path) -> str:
    return f"journal:{tmp_path}/runs/jsb_tiny/study.journal"


def _budget(tmp_path) -> dict[str, list]:
    """Per search/final study: the trials that count (finished, not replaced by a retry)."""
    out = {}
    for name, trials in states(_journal(tmp_path), "jsb_tiny").items():
        replaced = {t.user_attrs.get("retried_from") for t in trials}
        out[name] = [t for t in trials if t.number not in replaced]
    return out


def _running_trial(url: str, timeout: float = 120.0):
    from rnnbench.studies.storage import open_storage

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        time.sleep(0.3)
        try:
            storage = open_storage(url, create=False)
        except Exception:  # noqa: BLE001 - not created yet
            continue
        for s in storage.get_all_studies():
            sid = storage.get_study_id_from_name(s.study_name)
            for t in storage.get_all_trials(sid, states=(TrialState.RUNNING,)):
                if t.user_attrs.get("worker_pid") and \
                        time.time() - t.datetime_start.timestamp() > 1.0:
                    return s.study_name, t
    raise AssertionError("no trial started")


def test_two_workers_spend_exactly_the_budget_on_journal_storage(tmp_path):
    proc = rnnbench("study", "run", str(TINY), "--workers", "2",
                    f"logging.dir={tmp_path / 'runs'}", "study.seeds=1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    budget = _budget(tmp_path)
    search = {k: v for k, v in budget.items() if not k.endswith("/final")}
    assert sorted(search) == ["jsb_tiny/gru", "jsb_tiny/lstm", "jsb_tiny/rnn_tanh"]
    every = [t for trials in states(_journal(tmp_path), "jsb_tiny").values() for t in trials]
    searched = [t for t in every if t.user_attrs["kind"] == "search"]
    # exactly 9 finished trials (complete + pruned + failed), 3 per variant, no extras
    assert len(searched) == 9
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
               for t in searched)
    assert all(len(trials) == 3 for trials in search.values())
    assert all(len(budget[f"{name}/final"]) == 1 for name in search)
    assert len({t.user_attrs["worker_pid"] for t in every}) == 2  # both workers trained
    threads = max(1, available_cores() // 2)
    logs = sorted((tmp_path / "runs" / "jsb_tiny" / "logs").glob("worker-*.log"))
    assert len(logs) == 2 and all(f"{threads} thread(s)" in p.read_text() for p in logs)
    results = json.loads((tmp_path / "runs" / "jsb_tiny" / "results.json").read_text())
    assert results["complete"] and len(results["variants"]) == 3
    # one table at the end: the report's, with the final runs' test metric and its interval
    assert "final test/nll" in proc.stdout and "95% CI" in proc.stdout
    assert "best config re-run over" not in proc.stdout  # nor the launcher's table too


def test_sigkilled_worker_trial_is_failed_retried_and_the_rerun_resumes(tmp_path):
    cmd = ["study", "run", str(TINY), "--workers", "2", f"logging.dir={tmp_path / 'runs'}",
           *SLOW]
    launcher = subprocess.Popen([sys.executable, "-m", "rnnbench", *cmd], cwd=ROOT,
                                env={**os.environ, "WANDB_MODE": "disabled"},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        study_name, victim = _running_trial(_journal(tmp_path))
        os.kill(victim.user_attrs["worker_pid"], signal.SIGKILL)
        out, _ = launcher.communicate(timeout=300)
    finally:
        launcher.kill()
    assert launcher.returncode == 0, out
    assert "exited with signal 9" in out and "restarting worker" in out
    again = rnnbench(*cmd)  # re-running the same command: nothing left, nothing duplicated
    assert again.returncode == 0, again.stdout + again.stderr
    trials = states(_journal(tmp_path), "jsb_tiny")[study_name]
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL and killed.user_attrs["fail_kind"] == "lost"
    assert "died while running it" in killed.user_attrs["fail_reason"]
    (retry,) = [t for t in trials if t.user_attrs.get("retried_from") == victim.number]
    assert retry.state.is_finished() and retry.params == killed.params
    budget = _budget(tmp_path)
    assert [len(budget[f"jsb_tiny/{v}"]) for v in ("lstm", "gru")] == [2, 2]
    assert all(t.state.is_finished() for ts in budget.values() for t in ts)


def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(tmp_path):
    cmd = ["study", "run", str(TINY), "--workers", "2", f"logging.dir={tmp_path / 'runs'}",
           *SLOW, "data.limit_pieces=80"]
    launcher = subprocess.Popen([sys.executable, "-m", "rnnbench", *cmd], cwd=ROOT,
                                env={**os.environ, "WANDB_MODE": "disabled"},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        study_name, running = _running_trial(_journal(tmp_path))
        launcher.send_signal(signal.SIGINT)
        out, _ = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    assert launcher.returncode == 130, out
    assert "Re-run the same command to resume" in out
    every = states(_journal(tmp_path), "jsb_tiny")
    assert not [t for ts in every.values() for t in ts if t.state == TrialState.RUNNING]
    stopped = every[study_name][running.number]
    assert stopped.user_attrs["fail_kind"] == "interrupted"
    assert any(t.user_attrs.get("retried_from") == running.number for t in every[study_name])
    again = rnnbench(*cmd)
    assert again.returncode == 0, again.stdout + again.stderr
    budget = _budget(tmp_path)
    assert [len(budget[f"jsb_tiny/{v}"]) for v in ("lstm", "gru")] == [2, 2]
