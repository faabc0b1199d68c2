"""The storage password never leaves the launcher: not on a command line, not in W&B, not in
any file, log or stored attribute (a real PostgreSQL server, W&B offline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from rnnbench.studies.storage import STORAGE_ENV, open_storage

from .conftest import ROOT, TINY

# A server role whose password occurs in no innocent text is the strong check; the CI server's
# default role has the password "rnnbench", which every path and log line holds, so with it
# only the URL forms of the password (user:password@, :password@) can be looked for.
URL = os.environ.get("RNNBENCH_TEST_POSTGRES_SECRET_URL") or os.environ.get(
    "RNNBENCH_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not URL, reason="RNNBENCH_TEST_POSTGRES_URL is not set; start a server with "
    'eval "$(bash .ci/postgres.sh)"')
API_KEY = "leakcanary" + "7" * 30  # a fake W&B key: offline runs never send it


def _needles(url: str) -> list[bytes]:
    parts = urlsplit(url)
    password = parts.password or ""
    out = {f"{parts.username}:{password}@", f":{unquote(password)}@", API_KEY}
    rest = url.replace(f":{password}@", "@")
    if len(password) >= 8 and password not in rest and password not in "rnnbench":
        out |= {password, unquote(password)}
    return sorted(x.encode() for x in out)


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == pid]
        out += kids
        frontier += kids
    return out


def _leaks(folder: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {n.decode()}" for n in needles if n in data]
    return found


def test_the_storage_password_never_leaves_the_launcher(tmp_path):
    assert URL is not None
    needles = _needles(URL)
    name = f"secret_{uuid.uuid4().hex[:8]}"
    wandb_dir = tmp_path / "wandb_home"
    wandb_dir.mkdir()
    env = {**os.environ, STORAGE_ENV: URL, "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "WANDB_DIR": str(wandb_dir), "WANDB_API_KEY": API_KEY}
    cmd = [sys.executable, "-m", "rnnbench", "study", "run", str(TINY), "--workers", "2",
           f"study.name={name}", f"logging.dir={tmp_path / 'runs'}",
           "logging.wandb={project: rnnbench-test}", "study.variants=[lstm, gru]",
           "study.trials_per_variant=1", "study.seeds=1", "data.limit_pieces=40",
           "trainer.limit_val_batches=null"]
    launcher = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
    workers, exposed = set(), []
    try:
        while launcher.poll() is None:  # every process the launcher started, while it runs
            for pid in _descendants(launcher.pid):
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"study\0worker" in argv:
                    workers.add(pid)
                exposed += [f"pid {pid}: {n.decode()}" for n in needles if n in argv]
            time.sleep(0.2)
        out = launcher.stdout.read()
    finally:
        launcher.kill()
    assert launcher.returncode == 0, out.decode(errors="replace")
    assert len(workers) >= 2  # the poll saw both workers
    assert exposed == []
    assert [n.decode() for n in needles if n in out] == []  # launcher output
    # run folder (worker logs, trial logs, results, report) and W&B folder
    assert _leaks(tmp_path, needles) == []
    runs = sorted((wandb_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 4 and all(list(r.glob("run-*.wandb")) for r in runs)
    assert not list(wandb_dir.rglob("wandb-metadata.json"))  # no command line recorded
    # every attribute stored with the study: 5 studies (root, search and final x 2), 4 trials
    storage = open_storage(URL, create=False)
    stored = []
    for s in storage.get_all_studies():
        if s.study_name == name or s.study_name.startswith(name + "/"):
            sid = storage.get_study_id_from_name(s.study_name)
            stored.append(s.user_attrs)
            stored += [(t.user_attrs, t.system_attrs) for t in storage.get_all_trials(sid)]
    blob = json.dumps(stored, default=str).encode()
    assert len(stored) == 9 and [n.decode() for n in needles if n in blob] == []
    results = json.loads((tmp_path / "runs" / name / "results.json").read_text())
    assert "***" in results["storage"]
