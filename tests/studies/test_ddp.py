"""Trials that train on several devices (DDP): rank 0 reports, every rank prunes together."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from .conftest import TINY, rnnbench, states


@pytest.mark.slow
def test_ddp_trials_report_from_rank_zero_and_prune_together(tmp_path):
    # Two CPU ranks (gloo) per trial; the pruner prunes every trial after the first. A rank
    # left behind in a collective would hang the study, so finishing at all is the check.
    proc = rnnbench(
        "study", "run", str(TINY), "--workers", "1", f"logging.dir={tmp_path / 'runs'}",
        "trainer.devices=2", "trainer.strategy=ddp", "study.variants=[lstm]",
        "study.trials_per_variant=3", "study.seeds=1",
        "study.pruner={name: median, n_startup_trials: 1}", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = states(f"sqlite:///{tmp_path}/runs/jsb_tiny/study.db", "jsb_tiny")
    search = trials["jsb_tiny/lstm"]
    assert len(search) == 3 and all(t.state.is_finished() for t in search)
    assert TrialState.COMPLETE in {t.state for t in search}
    assert all(list(t.intermediate_values) in ([1], [1, 2]) for t in search)
    log = (tmp_path / "runs" / "jsb_tiny" / "logs" / "worker-0.log").read_text()
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log  # rank 1 ran every trial with rank 0
    assert trials["jsb_tiny/lstm/final"][0].state == TrialState.COMPLETE
