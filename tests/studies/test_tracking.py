"""W&B: offline unless logged in, one offline run per trial carrying group/job_type/config."""

from __future__ import annotations

import pytest

from rnnbench.studies.tracking import logged_in, read_offline_run, resolve_mode, wandb_settings

from .conftest import TINY, rnnbench, states


def test_mode_is_offline_unless_logged_in(tmp_path, monkeypatch):
    for key in ("WANDB_MODE", "WANDB_API_KEY", "NETRC", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert not logged_in() and resolve_mode({}) == "offline"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password k\n")
    assert logged_in() and resolve_mode({}) == "online"
    assert resolve_mode({"mode": "offline"}) == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode({"mode": "online"}) == "disabled"  # the user's shell wins
    assert wandb_settings({"logging": {"wandb": False}}) is None
    assert wandb_settings({"logging": {"wandb": True}}) == {}
    assert wandb_settings({"logging": {"wandb": {"project": "p"}}}) == {"project": "p"}


def test_every_trial_is_one_offline_run(tmp_path):
    wandb_dir = tmp_path / "wandb_home"
    wandb_dir.mkdir()
    proc = rnnbench(
        "study", "run", str(TINY), "--workers", "2", f"logging.dir={tmp_path / 'runs'}",
        "logging.wandb={project: rnnbench-test}", "study.variants=[lstm, gru]",
        "study.trials_per_variant=1", "study.seeds=1",
        env={"WANDB_MODE": "offline", "WANDB_DIR": str(wandb_dir), "WANDB_SILENT": "true"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = sorted((wandb_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 4  # 2 variants x (1 trial + 1 final re-run), one run each
    seen = {read_offline_run(d)["id"]: read_offline_run(d) for d in runs}
    trials = [t for ts in states(f"journal:{tmp_path}/runs/jsb_tiny/study.journal",
                                 "jsb_tiny").values() for t in ts]
    for t in trials:
        run = seen[t.user_attrs["wandb_run_id"]]
        variant = t.user_attrs["variant"]
        assert (run["project"], run["group"], run["job_type"]) == \
            ("rnnbench-test", "jsb_tiny", variant)
        assert run["tags"] == [t.user_attrs["kind"]]
        cfg = run["config"]
        assert cfg["lr"] == t.params["lr"] and cfg["optimizer"] == t.params["optimizer"]
        assert cfg["num_parameters"] == t.user_attrs["num_parameters"]
        assert cfg["variant"] == variant and cfg["trial"] == t.number
        assert cfg["config"]["model"]["cell"] == variant


def test_a_trial_summary_holds_objective_best_epoch_state_and_pruning_step(pruned_study):
    # pruned_study: a grid of two learning rates, the hopeless one second, which the median
    # pruner stops after epoch 1; read back from the offline run files (run-*.wandb).
    runs = {r["id"]: r for r in map(read_offline_run, pruned_study["wandb"].glob("offline-*"))}
    trials = states(pruned_study["url"], "jsb_tiny")["jsb_tiny/gru"]
    assert sorted(t.state.name for t in trials) == ["COMPLETE", "PRUNED"]
    for t in trials:
        summary = runs[t.user_attrs["wandb_run_id"]]["summary"]
        assert summary["trial/state"] == t.state.name and summary["trial/number"] == t.number
        assert summary["trial/objective"] == "val/nll"
        epochs = {int(k): v for k, v in t.intermediate_values.items()}
        best_epoch = min(epochs, key=lambda e: (epochs[e], e))
        assert summary["trial/best_epoch"] == best_epoch
        assert summary["trial/best_value"] == pytest.approx(epochs[best_epoch])
        assert summary["val/nll"] == {"min": pytest.approx(epochs[best_epoch])}
        if t.state.name == "COMPLETE":
            assert summary["trial/value"] == pytest.approx(t.value)
            assert "trial/pruned_step" not in summary and max(epochs) == 2
        else:
            assert summary["trial/pruned_step"] == max(epochs) == 1
            assert "trial/value" not in summary and "pruned" in summary["trial/reason"]
