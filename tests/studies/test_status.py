"""`study list` / `study status`, `study run --threads`, and what other tools read of a study."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest
from optuna.trial import TrialState

from rnnbench.studies.ledger import POPULATION_ATTR, StudyRun, rnnbench_studies
from rnnbench.studies.pool import plan_workers, user_threads
from rnnbench.studies.status import locate, running_cell, study_status
from rnnbench.studies.storage import open_storage

from .conftest import TINY, rnnbench


@pytest.fixture
def finished(pruned_study):
    """``(runs folder, storage URL, env, launcher + worker output)`` of conftest's study."""
    s = pruned_study
    return s["runs"], s["url"], s["env"], s["output"]


def test_threads_flag_reaches_the_worker(finished):
    _, _, _, out = finished
    assert "1 worker(s), 1 thread(s) each" in out
    assert "1 thread(s)" in out.split("joined study", 1)[1].splitlines()[0]


def test_threads_follow_the_flag_then_omp_num_threads(tiny, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert user_threads() == 3 and user_threads(2) == 2
    plan = plan_workers(tiny(), 2, cores=8, gpus=[], threads=user_threads())
    assert plan.threads == 3 and "6 threads on 8" not in plan.note
    plan = plan_workers(tiny(), 2, cores=4, gpus=[], threads=3)
    assert plan.threads == 3 and "6 threads on 4 core(s)" in plan.note
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert user_threads() is None and plan_workers(tiny(), 2, cores=8, gpus=[]).threads == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS"):
        user_threads()
    proc = rnnbench("study", "run", str(TINY), "--threads", "0")
    assert proc.returncode == 2 and "--threads must be a positive integer" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_list_and_status_of_a_finished_study_from_another_folder(finished, tmp_path):
    runs, url, env, _ = finished
    proc = rnnbench("study", "list", str(runs), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert (row["study"], row["state"], row["done"], row["total"]) == ("jsb_tiny", "done", 2, 2)
    assert (row["variants"][0]["pruned"], row["variants"][0]["failed"]) == (1, 0)
    table = rnnbench("study", "list", str(runs), env=env)
    assert "jsb_tiny" in table.stdout and "done" in table.stdout and "2/2" in table.stdout
    # status by name alone, from a folder with no runs/ in it: the index of studies run here
    proc = subprocess.run([sys.executable, "-m", "rnnbench", "study", "status", "jsb_tiny",
                           "--json"], cwd=tmp_path, env={**_env(), **env}, text=True,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    (gru,) = got["variants"]
    trials = _trials(url)
    best = min(t.value for t in trials["jsb_tiny/gru"] if t.state == TrialState.COMPLETE)
    assert (gru["done"], gru["running"], gru["failed"], gru["waiting"]) == (2, 0, 0, 0)
    assert gru["pruned"] == sum(t.state == TrialState.PRUNED for ts in trials.values()
                                for t in ts)
    assert gru["best"] == pytest.approx(best) and got["state"] == "done"
    assert got["eta_s"] is None and got["mean_run_s"] > 0
    # and `rnnbench report NAME` finds it from there too
    rep = subprocess.run([sys.executable, "-m", "rnnbench", "report", "jsb_tiny", "--format",
                          "csv", "--no-plots", "--out", str(tmp_path / "rep")], cwd=tmp_path,
                         env={**_env(), **env}, text=True, capture_output=True, timeout=120)
    assert rep.returncode == 0, rep.stderr
    assert "gru" in (tmp_path / "rep" / "report.csv").read_text()
    # an unknown study: one paragraph, exit 2
    bad = rnnbench("study", "status", "nope", "--dir", str(tmp_path), env=env)
    assert bad.returncode == 2 and "no study storage for 'nope'" in bad.stderr


def test_status_of_a_running_study_counts_states_and_estimates_the_time_left(tiny, tmp_path):
    spec = tiny("study.variants=[gru, lstm]", "study.trials_per_variant=3", "study.seeds=1")
    spec.metric, spec.direction = "val/nll", "minimize"
    url = f"sqlite:///{tmp_path}/s.db"
    run = StudyRun.create(spec, url)
    run.prepare()
    storage = run.storage
    gru, lstm = run.spec.variants
    search = run.study(gru, "search")
    ids = [run.trial_id(search, t.number) for t in run.trials(gru, "search")]
    start = datetime.now() - timedelta(seconds=100)
    # gru: one complete (60 s), one pruned (40 s), one running on a worker; lstm untouched.
    # The two finished trained in one population of 4: each costs its wall time / 4.
    for tid, state, value, secs in ((ids[0], TrialState.COMPLETE, 2.5, 60),
                                    (ids[1], TrialState.PRUNED, None, 40)):
        storage.set_trial_state_values(tid, TrialState.RUNNING)
        storage.set_trial_system_attr(tid, POPULATION_ATTR, 4)
        storage.set_trial_state_values(tid, state, [value] if value is not None else None)
        _backdate(tmp_path / "s.db", tid, start, start + timedelta(seconds=secs))
    storage.set_trial_state_values(ids[2], TrialState.RUNNING)
    storage.set_trial_user_attr(ids[2], "worker_id", "host:1/w0")
    storage.set_trial_intermediate_value(ids[2], 3, 2.7)  # it reported epoch 3
    status = study_status(StudyRun.attach(url, spec.name))
    assert status.variants[0].running_epochs == [3]
    assert running_cell(status.variants[0], status.max_epochs) == \
        f"1 at epoch 3/{spec.max_epochs}"
    assert running_cell(status.variants[1], status.max_epochs) == "0"
    assert status.state == "running" and status.workers == 1
    g, m = (v.counts for v in status.variants)
    assert g == {"done": 2, "running": 1, "failed": 0, "pruned": 1, "waiting": 1}
    assert m == {"done": 0, "running": 0, "failed": 0, "pruned": 0, "waiting": 4}
    assert status.best == ("gru", 2.5) and (status.done, status.total) == (2, 8)
    assert status.mean_run_s == pytest.approx(12.5, abs=0.5)  # (60/4 + 40/4) / 2
    assert status.eta_s == pytest.approx(12.5 * 6, abs=3)  # 6 runs left, one worker
    assert locate(spec.name, storage=url) == url
    # --dir takes the study's folder or the folder of studies that holds it
    (tmp_path / "runs" / spec.name).mkdir(parents=True)
    (tmp_path / "runs" / spec.name / "study.journal").write_text("")
    for folder in (tmp_path / "runs", tmp_path / "runs" / spec.name):
        assert locate(spec.name, folder=folder).endswith(f"runs/{spec.name}/study.journal")
    # final runs are priced on their own once one finished (else every final run would be
    # priced at a search run's cost, or at a whole population's wall time)
    final = run.study(gru, "final")
    fid = final.ask()._trial_id
    storage.set_trial_state_values(fid, TrialState.COMPLETE, [2.6])
    _backdate(tmp_path / "s.db", fid, start, start + timedelta(seconds=30))
    status = study_status(StudyRun.attach(url, spec.name))
    assert status.mean_s["search"] == pytest.approx(12.5, abs=0.5)  # (60/4 + 40/4) / 2
    assert status.mean_s["final"] == pytest.approx(30, abs=1)
    # left: gru 1 search (the running one counts as not done) + lstm 3 search, lstm 1 final
    left = status.total - status.done
    assert status.eta_s == pytest.approx(4 * 12.5 + 1 * 30, abs=6) and left == 5
    assert status.pace == "12s a search run, 30s a final run"


def test_before_any_run_finished_the_time_left_is_projected_from_runs_under_way(tiny,
                                                                                tmp_path):
    spec = tiny("study.variants=[gru]", "study.trials_per_variant=2", "study.seeds=1",
                "trainer.max_epochs=10")
    url = f"sqlite:///{tmp_path}/s.db"
    run = StudyRun.create(spec, url)
    run.prepare()
    (gru,) = run.spec.variants
    search = run.study(gru, "search")
    tid = run.trial_id(search, run.trials(gru, "search")[0].number)
    run.storage.set_trial_state_values(tid, TrialState.RUNNING)
    run.storage.set_trial_intermediate_value(tid, 2, 3.0)  # 2 of 10 epochs ...
    with sqlite3.connect(tmp_path / "s.db") as con:  # ... in 60 s: 300 s a run
        start = (datetime.now() - timedelta(seconds=60)).isoformat(" ")
        con.execute("UPDATE trials SET datetime_start = ? WHERE trial_id = ?", (start, tid))
    status = study_status(StudyRun.attach(url, spec.name))
    assert status.projected == {"search"}
    assert status.mean_s["search"] == pytest.approx(300, abs=15)
    assert "(projected from runs under way)" in status.pace
    assert status.eta_s == pytest.approx(300 * 3, abs=45)  # 2 search + 1 final, 1 worker


def test_optuna_studies_and_the_dashboard_read_a_study(finished):
    _, url, _, _ = finished
    storage = open_storage(url, create=False)
    assert list(rnnbench_studies(storage)) == ["jsb_tiny"]
    optuna_cli = shutil.which("optuna") or str(Path(sys.executable).with_name("optuna"))
    proc = subprocess.run([optuna_cli, "studies", "--storage", url, "-f", "json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    studies = {s["name"]: s for s in json.loads(proc.stdout)}
    assert set(studies) == {"jsb_tiny", "jsb_tiny/gru", "jsb_tiny/gru/final"}
    assert studies["jsb_tiny/gru"]["n_trials"] == 2
    # the root's only user attribute is one readable line; the spec is elsewhere
    assert set(studies["jsb_tiny"]["user_attrs"]) == {"rnnbench"}
    assert len(studies["jsb_tiny"]["user_attrs"]["rnnbench"]) < 200
    dashboard = pytest.importorskip("optuna_dashboard")  # the `dashboard` extra
    app = dashboard.wsgi(storage)
    listed = _get(app, "/api/studies")["study_summaries"]
    ids = {s["study_name"]: s["study_id"] for s in listed}
    assert set(ids) == set(studies)
    detail = _get(app, f"/api/studies/{ids['jsb_tiny/gru']}")
    assert len(detail["trials"]) == 2 and all(t["params"] for t in detail["trials"])
    root = _get(app, f"/api/studies/{ids['jsb_tiny']}")
    assert [a["key"] for a in root["user_attrs"]] == ["rnnbench"]


def _get(app, path: str) -> dict:
    status: list[str] = []
    env = {"PATH_INFO": path}
    setup_testing_defaults(env)
    body = b"".join(app(env, lambda s, headers, exc_info=None: status.append(s)))
    assert status[0].startswith("200"), body[:300]
    return json.loads(body)


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "WANDB_MODE": "disabled"}


def _trials(url: str) -> dict[str, list]:
    storage = open_storage(url, create=False)
    return {s.study_name: storage.get_all_trials(storage.get_study_id_from_name(s.study_name))
            for s in storage.get_all_studies() if "/" in s.study_name}


def _backdate(db: Path, trial_id: int, start: datetime, end: datetime) -> None:
    """Sets a trial's start and end times in an SQLite storage (Optuna sets them to now)."""

    with sqlite3.connect(db) as con:
        con.execute("UPDATE trials SET datetime_start = ?, datetime_complete = ? WHERE "
                    "trial_id = ?", (start.isoformat(" "), end.isoformat(" "), trial_id))
