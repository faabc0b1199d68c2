"""Placing workers on GPUs and cores: the plan over fake GPU lists, then what real worker
processes started by the real launcher actually get (a probe records it; no CUDA needed)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from rnnbench.experiment import ConfigError
from rnnbench.studies import pool
from rnnbench.studies.pool import RANK_VARS, THREAD_VARS, WorkerPlan, plan_workers

PROBE_DIR = Path(__file__).parent / "probe"


def _ids(n: int) -> list[str]:
    return [str(i) for i in range(n)]


def _used(plan: WorkerPlan) -> Counter:
    """How many workers each GPU id is pinned to."""
    return Counter(g for group in plan.gpus for g in group.split(","))


# ---------------------------------------------------------------------- one worker per GPU
@pytest.mark.parametrize("devices", [1, 2])
@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_default_plan_gives_every_gpu_to_exactly_one_worker(tiny, n, devices):
    spec = tiny("trainer.accelerator=gpu", f"trainer.devices={devices}")
    if devices > n:
        with pytest.raises(ConfigError, match=f"trainer.devices={devices} needs {devices} GPUs"):
            plan_workers(spec, cores=16, gpus=_ids(n))
        return
    plan = plan_workers(spec, cores=16, gpus=_ids(n))
    assert plan.count == n // devices == len(plan.gpus)
    assert all(len(group.split(",")) == devices for group in plan.gpus)
    assert _used(plan) == Counter(_ids(n))  # each GPU once, none idle
    # every training process (a DDP rank is one) gets an equal share of the cores
    assert plan.threads == max(1, 16 // n)
    assert plan.note == ""


def test_ddp_groups_are_disjoint_and_in_order(tiny):
    plan = plan_workers(tiny("trainer.accelerator=cuda", "trainer.devices=2"), cores=32,
                        gpus=_ids(8))
    assert plan.gpus == ["0,1", "2,3", "4,5", "6,7"]
    assert plan.threads == 4  # 4 workers x 2 ranks on 32 cores


def test_accelerator_auto_with_gpus_visible_places_on_gpus(tiny):
    plan = plan_workers(tiny("trainer.accelerator=auto"), cores=4, gpus=["0", "1"])
    assert plan.gpus == ["0", "1"] and plan.threads == 2


# ---------------------------------------------------------------------- explicit --workers
def test_more_workers_than_gpus_share_them_evenly_with_a_note(tiny):
    plan = plan_workers(tiny("trainer.accelerator=gpu"), 4, cores=16, gpus=["0", "1"])
    assert plan.gpus == ["0", "1", "0", "1"]
    assert _used(plan) == {"0": 2, "1": 2}
    assert plan.threads == 4
    assert "4 workers x 1 GPU(s) share 2 visible GPU(s)" in plan.note


def test_more_ddp_workers_than_gpu_groups_share_whole_groups(tiny):
    plan = plan_workers(tiny("trainer.accelerator=gpu", "trainer.devices=2"), 4, cores=16,
                        gpus=_ids(4))
    assert plan.gpus == ["0,1", "2,3", "0,1", "2,3"]
    assert plan.threads == 2  # 4 workers x 2 ranks
    assert "share 4 visible GPU(s)" in plan.note


def test_fewer_workers_than_gpus_leave_the_rest_idle_with_a_note(tiny):
    plan = plan_workers(tiny("trainer.accelerator=gpu"), 3, cores=12, gpus=_ids(8))
    assert plan.gpus == ["0", "1", "2"]
    assert plan.threads == 4
    assert "leave GPU(s) 3, 4, 5, 6, 7 idle" in plan.note and "--workers 8" in plan.note


@pytest.mark.parametrize("workers", [0, -2])
def test_a_worker_count_below_one_is_refused(tiny, workers):
    with pytest.raises(ConfigError, match="--workers must be a positive integer"):
        plan_workers(tiny(), workers, cores=4)


# ---------------------------------------------------------------------- trainer.devices forms
def test_devices_minus_one_puts_every_gpu_in_one_trial(tiny):
    plan = plan_workers(tiny("trainer.accelerator=gpu", "trainer.devices=-1"), cores=8,
                        gpus=_ids(4))
    assert plan.gpus == ["0,1,2,3"] and plan.threads == 2


def test_devices_auto_is_one_gpu_per_worker(tiny):
    plan = plan_workers(tiny("trainer.accelerator=gpu", "trainer.devices=auto"), cores=8,
                        gpus=_ids(2))
    assert plan.gpus == ["0", "1"]


def test_devices_as_a_list_counts_gpus_and_refuses_indices_a_worker_cannot_see(tiny):
    plan = plan_workers(tiny("trainer.accelerator=gpu", "trainer.devices=[0,1]"), cores=8,
                        gpus=_ids(4))
    assert plan.gpus == ["0,1", "2,3"]
    with pytest.raises(ConfigError, match="write trainer.devices=2"):
        plan_workers(tiny("trainer.accelerator=gpu", "trainer.devices=[2,3]"), cores=8,
                     gpus=_ids(4))


# ---------------------------------------------------------------------- CUDA_VISIBLE_DEVICES
def test_a_user_restriction_is_kept_as_written(tiny, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5, 6")
    plan = plan_workers(tiny("trainer.accelerator=gpu"), cores=6)
    assert plan.gpus == ["3", "5", "6"] and plan.threads == 2
    assert [plan.env(k)["CUDA_VISIBLE_DEVICES"] for k in range(3)] == ["3", "5", "6"]


@pytest.mark.parametrize(("text", "ids"), [
    ("", []),
    ("-1", []),
    ("0,-1,2", ["0"]),  # CUDA stops at the first invalid entry
    ("1,none,2", ["1"]),
    ("GPU-8f2a,GPU-91bc", ["GPU-8f2a", "GPU-91bc"]),
    ("MIG-4e0b", ["MIG-4e0b"]),
])
def test_visible_gpus_follow_the_driver_rules(monkeypatch, text, ids):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", text)
    assert pool._visible_gpus() == ids


def test_a_repeated_gpu_is_refused(tiny, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,1")
    with pytest.raises(ConfigError, match="names GPU 1 twice"):
        plan_workers(tiny("trainer.accelerator=gpu"), cores=4)


def test_without_the_variable_every_gpu_torch_sees_is_used(tiny, monkeypatch):
    import torch

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert plan_workers(tiny("trainer.accelerator=auto"), cores=6).gpus == ["0", "1", "2"]


def test_hidden_gpus_with_a_gpu_trainer_are_an_error_and_with_auto_mean_cpu(tiny, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ConfigError, match="no GPU is visible"):
        plan_workers(tiny("trainer.accelerator=gpu"), cores=4)
    plan = plan_workers(tiny("trainer.accelerator=auto"), 2, cores=4)
    assert plan.gpus == [] and plan.threads == 2


def test_a_cpu_trainer_ignores_gpus_and_leaves_their_variable_alone(tiny):
    plan = plan_workers(tiny("trainer.accelerator=cpu"), cores=4, gpus=_ids(2))
    assert plan.gpus == [] and plan.count == 1 and plan.threads == 4
    env = plan.env(0, base={"CUDA_VISIBLE_DEVICES": "1"})
    assert env["CUDA_VISIBLE_DEVICES"] == "1"


# ---------------------------------------------------------------------- CPU thread splits
@pytest.mark.parametrize(("workers", "devices", "threads"), [
    (None, 1, 8), (1, 1, 8), (2, 1, 4), (3, 1, 2), (4, 1, 2), (8, 1, 1),
    (1, 2, 4), (2, 2, 2), (3, 2, 1),
])
def test_cpu_workers_split_the_cores(tiny, workers, devices, threads):
    plan = plan_workers(tiny("trainer.accelerator=cpu", f"trainer.devices={devices}"),
                        workers, cores=8)
    assert plan.count == (workers or 1) and plan.gpus == [] and plan.threads == threads
    assert plan.note == ""


def test_auto_accelerator_without_gpus_counts_ddp_ranks_as_processes(tiny):
    # Lightning runs devices=2 on CPU as two processes whatever the accelerator was called.
    plan = plan_workers(tiny("trainer.accelerator=auto", "trainer.devices=2"), 2, cores=8,
                        gpus=[])
    assert plan.threads == 2


def test_oversubscribed_cores_get_one_thread_and_a_note(tiny):
    plan = plan_workers(tiny("trainer.accelerator=cpu", "trainer.devices=2"), 3, cores=4)
    assert plan.threads == 1
    assert "6 training processes on 4 core(s)" in plan.note and "--workers 2" in plan.note


# ---------------------------------------------------------------------- the environment
def test_worker_env_pins_sets_threads_and_drops_inherited_rank_variables():
    base = {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1,2,3", "OMP_NUM_THREADS": "64",
            **{k: "3" for k in RANK_VARS}}
    plan = WorkerPlan(2, 3, ["0,1", "2,3"])
    env = plan.env(1, base=base)
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert all(env[k] == "3" for k in THREAD_VARS) and env["RNNBENCH_WORKER_THREADS"] == "3"
    assert not set(RANK_VARS) & set(env)
    assert env["PATH"] == "/bin" and base["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"


# ---------------------------------------------------------------------- real workers
def _probe_launch(tiny, tmp_path, monkeypatch, gpus: str, *overrides: str) -> list[dict]:
    """Runs a study with the real launcher under fake GPUs; returns the probe's records."""
    from rich.console import Console

    from rnnbench.studies.pool import launch_study

    probe = tmp_path / "probe.jsonl"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", gpus)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the user's: it would set threads
    monkeypatch.setenv("RNNBENCH_PROBE", str(probe))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(PROBE_DIR), os.environ.get("PYTHONPATH")) if p))
    # What a launcher started inside a scheduler's task or a torchrun job inherits.
    for key, value in (("LOCAL_RANK", "3"), ("RANK", "3"), ("WORLD_SIZE", "8"),
                       ("SLURM_NTASKS", "4"), ("TORCHELASTIC_RUN_ID", "job"),
                       ("MASTER_PORT", "29999")):
        monkeypatch.setenv(key, value)
    spec = tiny("trainer.accelerator=auto", "study.variants=[gru]", "study.seeds=0",
                *overrides)
    out = io.StringIO()
    code = launch_study(spec, live=False, console=Console(file=out, width=160), poll_s=0.3)
    assert code == 0, out.getvalue()
    return [json.loads(line) for line in probe.read_text().splitlines()]


def _workers(records: list[dict]) -> list[dict]:
    return [r for r in records if "worker" in r["argv"] and r["env"]["LOCAL_RANK"] is None]


def test_real_workers_get_their_gpu_their_threads_and_no_rank_env(tiny, tmp_path, monkeypatch):
    records = _probe_launch(tiny, tmp_path, monkeypatch, "5,7", "study.trials_per_variant=1")
    workers = _workers(records)
    threads = max(1, pool.available_cores() // 2)
    assert len(workers) == 2
    # each visible GPU went to exactly one worker, under its own id (not renumbered)
    assert sorted(w["env"]["CUDA_VISIBLE_DEVICES"] for w in workers) == ["5", "7"]
    for w in workers:
        index = int(w["argv"][w["argv"].index("--worker-index") + 1])
        assert w["env"]["CUDA_VISIBLE_DEVICES"] == ["5", "7"][index]
        assert w["env"]["OMP_NUM_THREADS"] == w["env"]["MKL_NUM_THREADS"] == str(threads)
        assert w["torch_threads"] == threads
        assert all(w["env"][k] is None for k in ("LOCAL_RANK", "RANK", "WORLD_SIZE",
                                                 "SLURM_NTASKS", "TORCHELASTIC_RUN_ID",
                                                 "MASTER_PORT"))


@pytest.mark.slow
def test_real_ddp_workers_and_their_ranks_share_one_gpu_group(tiny, tmp_path, monkeypatch):
    # Two workers x two CPU ranks (gloo) under four fake GPUs: each worker's rank 1 is a
    # process Lightning starts from it; both must see the worker's GPU pair and threads.
    records = _probe_launch(tiny, tmp_path, monkeypatch, "0,1,2,3", "trainer.devices=2",
                            "trainer.strategy=ddp", "study.trials_per_variant=2")
    workers = {w["pid"]: w for w in _workers(records)}
    ranks = [r for r in records if r["env"]["LOCAL_RANK"] == "1"]
    threads = max(1, pool.available_cores() // 4)
    assert sorted(w["env"]["CUDA_VISIBLE_DEVICES"] for w in workers.values()) == ["0,1", "2,3"]
    assert ranks, "no DDP rank 1 was started"
    for r in ranks:
        parent = workers[r["ppid"]]
        assert r["env"]["CUDA_VISIBLE_DEVICES"] == parent["env"]["CUDA_VISIBLE_DEVICES"]
        assert r["env"]["WORLD_SIZE"] == "2" and r["env"]["SLURM_NTASKS"] is None
        assert r["torch_threads"] == threads == parent["torch_threads"]


# ---------------------------------------------------------------------- SLURM array tasks
SLURM_SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "slurm_study.sh"
URL = "postgresql+psycopg://me:secret@db-host:5432/rnnbench"
FAKE = """#!{python}
# A stand-in for rnnbench: answers --help, records argv and environment of anything else.
import json, os, sys
if "--help" in sys.argv:
    print("usage: rnnbench study worker" + os.environ.get("FAKE_HELP", ""))
    sys.exit(0)
with open(os.environ["FAKE_RECORD"], "a") as fh:
    fh.write(json.dumps({{"argv": sys.argv[1:], "env": dict(os.environ)}}) + "\\n")
"""


def _slurm_task(tmp_path, env: dict[str, str], *args: str, new_cli: bool = True):
    """Runs the array-task script with a hand-made SLURM environment and a fake rnnbench;
    returns (completed process, what rnnbench was started with or None)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "rnnbench"
    fake.write_text(FAKE.format(python=sys.executable))
    fake.chmod(0o755)
    record = tmp_path / "record.jsonl"
    record.unlink(missing_ok=True)
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SLURM_", "RNNBENCH_", "CUDA_", "OMP_", "MKL_"))}
    full = {**base, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "FAKE_RECORD": str(record), "RNNBENCH_STORAGE": URL, "RNNBENCH_STUDY": "s1",
            "SLURM_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": "0", "SLURM_NTASKS": "1",
            "FAKE_HELP": " (default: $RNNBENCH_STORAGE)" if new_cli else "", **env}
    full = {k: v for k, v in full.items() if v is not None}
    proc = subprocess.run(["bash", str(SLURM_SCRIPT), *args], env=full, capture_output=True,
                          text=True, timeout=60)
    calls = [json.loads(x) for x in record.read_text().splitlines()] if record.exists() else []
    assert len(calls) <= 1
    return proc, (calls[0] if calls else None)


@pytest.mark.parametrize(("env", "pinned", "threads"), [
    ({"CUDA_VISIBLE_DEVICES": "3", "SLURM_CPUS_PER_TASK": "6"}, "3", "6"),
    ({"CUDA_VISIBLE_DEVICES": "0,1,2,3", "SLURM_LOCALID": "2", "SLURM_CPUS_PER_TASK": "4"},
     "2", "4"),
    ({"CUDA_VISIBLE_DEVICES": "4,5,6,7", "SLURM_LOCALID": "1", "SLURM_CPUS_PER_TASK": "8",
      "RNNBENCH_GPUS_PER_WORKER": "2"}, "6,7", "4"),
    ({"SLURM_GPUS_ON_NODE": "4", "SLURM_LOCALID": "3", "SLURM_CPUS_PER_TASK": "2"}, "3", "2"),
    ({"CUDA_VISIBLE_DEVICES": "GPU-aa,GPU-bb", "SLURM_LOCALID": "1"}, "GPU-bb", None),
    ({"SLURM_CPUS_PER_TASK": "5"}, None, "5"),  # no GPU: a CPU worker on its cores
])
def test_slurm_task_pins_its_gpus_and_threads(tmp_path, env, pinned, threads):
    proc, call = _slurm_task(tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    argv, got = call["argv"], call["env"]
    assert argv[:4] == ["study", "worker", "--study", "s1"]
    assert got.get("CUDA_VISIBLE_DEVICES") == pinned
    if threads:
        assert argv[argv.index("--threads") + 1] == threads
        assert got["OMP_NUM_THREADS"] == got["MKL_NUM_THREADS"] == threads
    else:
        assert "--threads" not in argv and "OMP_NUM_THREADS" not in got
    # the password never reaches a command line; Lightning sees no SLURM task layout
    assert not [a for a in argv if "secret" in a] and got["RNNBENCH_STORAGE"] == URL
    assert "SLURM_NTASKS" not in got and got["SLURM_JOB_ID"] == "77"


def test_slurm_task_refuses_a_share_of_gpus_it_does_not_have(tmp_path):
    proc, call = _slurm_task(tmp_path, {"CUDA_VISIBLE_DEVICES": "0,1", "SLURM_LOCALID": "1",
                                        "RNNBENCH_GPUS_PER_WORKER": "2"})
    assert proc.returncode == 2 and call is None
    assert "needs GPUs 3-4 of the 2 it sees (0 1)" in proc.stderr


def test_slurm_task_needs_the_storage_in_its_environment(tmp_path):
    proc, call = _slurm_task(tmp_path, {"RNNBENCH_STORAGE": None})
    assert proc.returncode == 2 and call is None and "set RNNBENCH_STORAGE" in proc.stderr


def test_slurm_task_passes_the_url_to_an_rnnbench_without_the_variable_and_says_so(tmp_path):
    proc, call = _slurm_task(tmp_path, {"CUDA_VISIBLE_DEVICES": "1"}, new_cli=False)
    assert proc.returncode == 0, proc.stderr
    argv = call["argv"]
    assert argv[argv.index("--storage") + 1] == URL and "visible to ps" in proc.stderr


def test_the_first_slurm_task_launches_the_study_and_the_others_join_it(tmp_path):
    env = {"RNNBENCH_LAUNCH": "configs/study/jsb_tiny.yaml", "SLURM_ARRAY_TASK_MIN": "4",
           "CUDA_VISIBLE_DEVICES": "2", "SLURM_CPUS_PER_TASK": "3"}
    proc, call = _slurm_task(tmp_path, {**env, "SLURM_ARRAY_TASK_ID": "4"},
                             "study.trials_per_variant=5")
    assert proc.returncode == 0, proc.stderr
    assert call["argv"] == ["study", "run", "configs/study/jsb_tiny.yaml", "--workers", "1",
                            "--no-live", "study.trials_per_variant=5"]
    assert call["env"]["CUDA_VISIBLE_DEVICES"] == "2"
    proc, call = _slurm_task(tmp_path, {**env, "SLURM_ARRAY_TASK_ID": "5"})
    assert call["argv"][:2] == ["study", "worker"]


def test_a_slurm_task_runs_the_real_worker_pinned(tiny, tmp_path):
    # The real `rnnbench study worker` behind the script, on a journal storage, with the
    # probe recording what the worker process got.
    from rnnbench.studies.runner import StudyRun

    spec = tiny("study.variants=[gru]", "study.trials_per_variant=1", "study.seeds=0")
    url = f"journal:{tmp_path / 'study.journal'}"
    StudyRun.create(spec, url).prepare()
    bin_dir = tmp_path / "real"
    bin_dir.mkdir()
    shim = bin_dir / "rnnbench"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m rnnbench "$@"\n')
    shim.chmod(0o755)
    probe = tmp_path / "probe.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CUDA_"))}
    env.update({
        "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}", "RNNBENCH_STORAGE": url,
        "RNNBENCH_STUDY": spec.name, "RNNBENCH_WAIT": "30",
        "RNNBENCH_OUTPUT": str(tmp_path / "out"), "RNNBENCH_PROBE": str(probe),
        "PYTHONPATH": os.pathsep.join(p for p in (str(PROBE_DIR), env.get("PYTHONPATH")) if p),
        "SLURM_ARRAY_TASK_ID": "1", "SLURM_NTASKS": "1", "SLURM_LOCALID": "1",
        "SLURM_GPUS_ON_NODE": "2", "SLURM_CPUS_PER_TASK": "1", "WANDB_MODE": "disabled"})
    proc = subprocess.run(["bash", str(SLURM_SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "done: ran 1 trial(s)" in proc.stdout, proc.stdout
    (worker,) = [r for r in map(json.loads, probe.read_text().splitlines())
                 if "worker" in r["argv"] and "--help" not in r["argv"]]
    assert worker["env"]["CUDA_VISIBLE_DEVICES"] == "1"
    assert worker["env"]["OMP_NUM_THREADS"] == "1" and worker["torch_threads"] == 1
    assert worker["env"]["SLURM_NTASKS"] is None
