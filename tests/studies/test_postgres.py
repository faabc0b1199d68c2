"""A real PostgreSQL server: two local workers plus a third process joining by hand.

Start one with ``eval "$(bash .ci/postgres.sh)"`` (sets RNNBENCH_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import uuid

import pytest
from optuna.trial import TrialState

from .conftest import ROOT, TINY, rnnbench, states

URL = os.environ.get("RNNBENCH_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not URL, reason="RNNBENCH_TEST_POSTGRES_URL is not set; start a server with "
    'eval "$(bash .ci/postgres.sh)"')


def _claim_all(url, name, queue):
    from rnnbench.studies.ledger import StudyRun
    from rnnbench.studies.worker import Worker

    worker = Worker(StudyRun.attach(url, name), output_dir=None)
    got = []
    while (claim := worker.claim()) is not None:
        got.append((claim[0].name, claim[3].number))
    queue.put(got)


def test_concurrent_claims_on_postgres_are_exact(tiny):
    from rnnbench.studies.ledger import StudyRun

    spec = tiny("study.metric=val/nll", "study.direction=minimize",
                f"study.name=claims_{uuid.uuid4().hex[:8]}", "study.trials_per_variant=5")
    StudyRun.create(spec, URL).prepare()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(URL, spec.name, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    claimed = [c for _ in procs for c in queue.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
    assert len(claimed) == len(set(claimed)) == 15


def test_two_workers_and_a_joining_third_on_postgres(tmp_path):
    name = f"pg_{uuid.uuid4().hex[:8]}"
    # The third process is up and polling before the launcher creates the study, so it
    # claims the first trial; it stops after that one, so the launcher's workers, however
    # slowly they start on a loaded machine, are left the rest of the same budget.
    third = subprocess.Popen(
        [sys.executable, "-m", "rnnbench", "study", "worker", "--storage", URL, "--study", name,
         "--wait", "120", "--threads", "1", "--max-trials", "1",
         "--output", str(tmp_path / "third")],
        cwd=ROOT, env={**os.environ, "WANDB_MODE": "disabled"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        proc = rnnbench("study", "run", str(TINY), "--workers", "2", "--storage", URL,
                        f"study.name={name}", f"logging.dir={tmp_path / 'runs'}",
                        "study.variants=[lstm, gru]", "study.seeds=1",
                        "data.limit_pieces=40", "trainer.limit_val_batches=null")
        third_out, _ = third.communicate(timeout=120)
    finally:
        third.kill()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert third.returncode == 0, third_out
    every = [t for ts in states(URL, name).values() for t in ts]
    search = [t for t in every if t.user_attrs["kind"] == "search"]
    assert len(search) == 6 and all(t.state.is_finished() for t in search)
    assert not [t for t in every if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    taken = [t.user_attrs["worker_pid"] for t in every]
    # the joining process and the launcher's workers took trials from the same budget
    assert taken.count(third.pid) == 1, third_out
    assert len(taken) == 8 and len(set(taken)) >= 2
