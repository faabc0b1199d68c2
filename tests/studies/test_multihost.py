"""Three hosts on a real network: a launcher and two ``study worker`` machines sharing one
PostgreSQL study, through a killed worker, a link cut for seconds and a database restart.

The hosts are network namespaces on a bridge (tests/studies/netns.py), each process with its
own host name, so the study tells them apart only by what a real cluster has: host name,
pid, heartbeat. Needs root, ``ip`` and PostgreSQL's server binaries; skipped otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from optuna.trial import TrialState

from rnnbench.studies.runner import StudyRun  # here: importing it mid-test takes seconds

from .conftest import ROOT, TINY
from .netns import Network, PgCluster, why_not

# Trials of several seconds even on a quiet machine (2 epochs ran in ~1 s there, and the
# kill step found no trial to kill), so that every fault lands mid-trial; no pruner, as a
# trial pruned after its first epoch lasts under a second (CI ran out of trials long enough
# to cut before the last fault step found one); a heartbeat each
# second and a trial declared lost after 10 s of silence; retries enough that a slow
# machine's false alarm cannot use a real loss's retry up.
STUDY = ["data.limit_pieces=40", "trainer.max_epochs=6", "trainer.limit_val_batches=null",
         "study.variants=[lstm, gru]", "study.trials_per_variant=3", "study.seeds=0",
         "study.pruner.name=none",
         "study.heartbeat_interval=1", "study.grace_period=10", "study.retries=3"]
START = re.compile(r"\] start (\S+) (trial|final seed \d+) #(\d+)$")


class Hosts:
    """The processes of the test, by host, with their logs."""

    def __init__(self, net: Network, url: str, name: str, folder: Path) -> None:
        self.net, self.url, self.name, self.folder = net, url, name, folder
        self.env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def _start(self, host: str, argv: list[str]) -> subprocess.Popen:
        with open(self.folder / f"{host}.log", "a") as log:
            proc = self.net.popen(host, argv, cwd=ROOT, env=self.env, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append((host, proc))
        return proc

    def launcher(self, host: str, trials: int = 3) -> subprocess.Popen:
        pin = ["taskset", "-c", "0"] if shutil.which("taskset") and os.cpu_count() > 2 else []
        return self._start(host, [
            *pin, sys.executable, "-m", "rnnbench", "study", "run", str(TINY), "--workers", "1",
            "--storage", self.url, "--no-live", "--no-report", f"study.name={self.name}",
            f"logging.dir={self.folder / 'runs'}", *STUDY,
            f"study.trials_per_variant={trials}"])

    def worker(self, host: str) -> subprocess.Popen:
        return self._start(host, [
            sys.executable, "-m", "rnnbench", "study", "worker", "--storage", self.url,
            "--study", self.name, "--wait", "180", "--threads", "1",
            "--output", str(self.folder / host)])

    def logs(self, tail: int | None = None) -> str:
        """Every host's output (the launcher's workers' logs too), or the last ``tail``
        characters of each."""
        files = [*self.folder.glob("*.log"), *self.folder.glob("runs/*/logs/*.log")]
        return "\n".join(f"===== {p.name}\n{p.read_text(errors='replace')[-(tail or 0):]}"
                         for p in sorted(files))

    def stop_all(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


class Watch:
    """Reads the study's storage from outside (surviving the database restart)."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name, self._storage = url, name, None

    def trials(self) -> dict[str, list]:
        from rnnbench.studies.storage import open_storage

        if self._storage is None:
            self._storage = open_storage(self.url, create=False)
        out = {}
        for s in self._storage.get_all_studies():
            if s.study_name.startswith(self.name + "/"):
                out[s.study_name] = sorted(self._storage.get_all_trials(s._study_id),
                                           key=lambda t: t.number)
        return out

    def running(self, hosts: tuple[str, ...], *, min_age: float = 1.5,
                timeout: float = 240.0, avoid: tuple[int, ...] = ()):
        """A trial RUNNING on one of ``hosts`` for ``min_age`` seconds, its parameters drawn:
        (study, trial)."""
        wanted = {f"rnb-{h}" for h in hosts}
        last = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.3)
            try:
                every = self.trials()
            except Exception as err:  # noqa: BLE001 - not created yet, or the server restarting
                self._storage, last = None, err
                continue
            for study, trials in every.items():
                for t in trials:
                    # with its parameters drawn: a loaded machine can take seconds from the
                    # claim to the first suggestion, and the retry must have them to copy
                    if (t.state == TrialState.RUNNING and t._trial_id not in avoid and t.params
                            and t.user_attrs.get("worker_host") in wanted
                            and time.time() - t.datetime_start.timestamp() > min_age):
                        return study, t
        raise AssertionError(f"no trial ran on {hosts} within {timeout} s (last storage "
                             f"error: {last!r})")


def _counting(trials: list) -> list:
    replaced = {t.user_attrs.get("retried_from") for t in trials}
    return [t for t in trials if t.number not in replaced]


def _study(tmp_path, faults, trials: int = 3) -> dict:
    """Runs the study (``trials`` search trials per variant) on hosts a (launcher), b and c
    (workers), calling ``faults(hosts, watch, pg)`` once they are started; checks the
    guarantees every fault must keep and returns what the fault-specific checks need."""
    reason = why_not()
    if reason:
        pytest.skip(f"several hosts cannot be simulated here: {reason}")
    name = f"mh_{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    with Network(["a", "b", "c"]) as net, PgCluster(net.gateway) as pg:
        hosts = Hosts(net, pg.url, name, tmp_path)
        watch = Watch(pg.url, name)
        try:
            # The joining workers start first and wait for the study: they are polling
            # when the launcher creates it, so hosts b and c each hold a trial before the
            # launcher's own worker has imported torch, however busy the machine is.
            hosts.worker("b")
            hosts.worker("c")
            launcher = hosts.launcher("a", trials)
            hit = faults(hosts, watch, pg)
            launcher.wait(timeout=420)
            workers = [p for h, p in hosts.procs if h != "a" and p.returncode is None]
            if launcher.returncode != 0:
                hosts.stop_all()  # failed: the logs say why, the workers need not finish
            for proc in workers:
                proc.wait(timeout=120)
        except BaseException:
            hosts.stop_all()
            print(hosts.logs(tail=6000))
            print(pg.log()[-3000:])
            raise
        wall = time.monotonic() - t0
        logs = hosts.logs()
        every = watch.trials()
        hosts.stop_all()
    print(f"multihost study wall time: {wall:.0f} s")

    assert launcher.returncode == 0, logs
    assert all(p.returncode == 0 for p in workers), logs
    # The budget is met exactly: per variant 3 trials count, one per search slot, nothing left
    # running or waiting (no final re-runs: study.seeds=0).
    flat = [t for trials in every.values() for t in trials]
    assert not [t for t in flat if not t.state.is_finished()], logs
    for variant in ("lstm", "gru"):
        assert not every[f"{name}/{variant}/final"]
        counted = _counting(every[f"{name}/{variant}"])
        assert sorted(t.user_attrs["slot"] for t in counted) == list(range(trials)), [
            (t.number, t.state, t.user_attrs) for t in every[f"{name}/{variant}"]]
    # No trial was claimed twice: each one started once in all the hosts' logs together.
    starts = Counter()
    for line in logs.splitlines():
        m = START.search(line)
        if m:
            variant, what, number = m.groups()
            starts[(variant, "search" if what == "trial" else "final", int(number))] += 1
    assert len(starts) >= len(flat) - 1, logs  # (a killed worker may not have logged)
    assert max(starts.values()) == 1, [k for k, n in starts.items() if n > 1]
    # Nothing lost to the faults: no trial failed for good, every failure was retried.
    retried = {t.user_attrs.get("retried_from") for t in flat} - {None}
    for t in flat:
        if t.state == TrialState.FAIL:
            assert t.user_attrs.get("fail_kind") in ("lost", "interrupted"), (
                t.number, t.user_attrs.get("fail_kind"), t.user_attrs.get("fail_reason"))
            assert t.number in retried, t.number
    # The trials a fault hit finished, or failed and were run again.
    by_study = {study: {t.number: t for t in trials} for study, trials in every.items()}
    for study, t in hit.values():
        now = by_study[study][t.number]
        assert now.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
            now.state == TrialState.FAIL and now.number in retried), now
    assert {t.user_attrs.get("worker_host") for t in flat} >= {"rnb-b", "rnb-c"}
    return {"every": every, "by_study": by_study, "hit": hit, "logs": logs}


def _cut_until_lost(hosts: Hosts, watch: Watch, host: str, avoid: tuple[int, ...]):
    """Cuts ``host`` off mid-trial until its trial is declared lost (by a worker elsewhere, or
    by a sweep from here, which is what an idle worker on another host does), then reconnects
    it. Returns (study, trial, whether it was declared lost).

    A trial seen running may finish in the moment before the link goes down (CI saw it: the
    result reached the database, the log line after it did not). Such a trial cannot be
    lost, so after the cut the trial is read again; one that already finished is passed
    over, the link restored, and the next trial on ``host`` taken instead."""
    elsewhere = StudyRun.attach(hosts.url, hosts.name)
    avoid = set(avoid)
    for _ in range(3):
        study, trial = watch.running((host,), avoid=tuple(avoid))
        hosts.net.link(host, up=False)
        down, lost = time.monotonic(), False
        try:
            time.sleep(0.5)  # a write already on its way lands (or not) by now
            if watch.trials()[study][trial.number].state != TrialState.RUNNING:
                avoid.add(trial._trial_id)
                continue
            while not lost and time.monotonic() - down < 30:
                time.sleep(1.0)
                elsewhere.sweep()
                now = watch.trials()[study][trial.number]
                lost = now.state == TrialState.FAIL
        finally:
            hosts.net.link(host, up=True)
        return study, trial, lost
    raise AssertionError(f"every trial on {host} finished as its link was cut")


def test_three_hosts_keep_the_budget_through_a_killed_worker_and_cut_links(tmp_path):
    def faults(hosts: Hosts, watch: Watch, pg: PgCluster) -> dict:
        # SIGKILL host b's worker mid-trial (the host is gone for good).
        study, killed = watch.running(("b",))
        (worker_b,) = [p for h, p in hosts.procs if h == "b"]
        assert killed.user_attrs["worker_pid"] == worker_b.pid
        worker_b.send_signal(signal.SIGKILL)
        worker_b.wait()
        # Cut host c off for 2 s mid-trial: well within the grace period.
        blip = watch.running(("c",), avoid=(killed._trial_id,))
        hosts.net.link("c", up=False)
        time.sleep(2.0)
        hosts.net.link("c", up=True)
        # Cut it off again, mid-trial, until that trial is declared lost.
        *cut, lost = _cut_until_lost(hosts, watch, "c", (killed._trial_id, blip[1]._trial_id))
        assert lost, "the cut-off trial was never declared lost"
        return {"killed": (study, killed), "blip": blip, "cut": tuple(cut)}

    # five trials per variant: enough left for another cut if one ends as the link goes down
    out = _study(tmp_path, faults, trials=5)
    by_study, every = out["by_study"], out["every"]
    study, killed = out["hit"]["killed"]
    # Lost by its silent heartbeat (another host's pid is not ours to probe), then run again
    # with the same parameters.
    lost = by_study[study][killed.number]
    assert lost.state == TrialState.FAIL and lost.user_attrs["fail_kind"] == "lost"
    assert "no heartbeat from worker pid" in lost.user_attrs["fail_reason"]
    assert "rnb-b" in lost.user_attrs["fail_reason"]
    again = [t for t in every[study] if t.user_attrs.get("retried_from") == killed.number]
    assert len(again) == 1 and again[0].params == lost.params and again[0].state.is_finished()
    # A short cut goes unnoticed: the trial's storage calls wait for the link, it counts once.
    study, blip = out["hit"]["blip"]
    assert by_study[study][blip.number].state in (TrialState.COMPLETE, TrialState.PRUNED)
    # A long one: the trial is lost and run again; the cut-off worker's late writes are
    # refused, its result discarded, and it goes on with the next trial.
    study, cut = out["hit"]["cut"]
    assert by_study[study][cut.number].user_attrs["fail_kind"] == "lost"
    variant = study.split("/")[1]
    assert f"fail {variant} trial #{cut.number} (another process declared this trial lost; " \
        "result discarded)" in out["logs"]


def test_three_hosts_keep_the_budget_through_a_database_restart(tmp_path):
    def faults(hosts: Hosts, watch: Watch, pg: PgCluster) -> dict:
        # Every host mid-trial or polling: drop every connection, refuse new ones for 3 s.
        hit = watch.running(("a", "b", "c"))
        pg.restart(down_s=3.0)
        return {"restart": hit}

    _study(tmp_path, faults)
