"""Storage mistakes through the real command: one paragraph, exit 2, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT, TINY, rnnbench

RECORD = json.dumps({"op_code": 0, "worker_id": "w", "study_name": "x", "directions": [1]})
# The driver is missing: a process in which `import psycopg` (and psycopg2) fails.
NO_PSYCOPG = ("import sys; sys.modules['psycopg'] = sys.modules['psycopg2'] = None; "
              "from rnnbench.cli import main; sys.exit(main())")


def _case(tmp_path, case: str) -> tuple[str, list[str]]:
    """``(storage URL, strings the message must hold)`` of one mistake."""
    if case == "unwritable":
        return "sqlite:////proc/x/study.db", ["/proc/x/study.db"]
    if case == "under_a_file":
        (tmp_path / "afile").write_text("")
        path = tmp_path / "afile" / "study.journal"
        return f"journal:{path}", [str(path)]
    if case == "no_driver":
        return "postgresql://me:secret@127.0.0.1:1/db", [
            'pip install "rnnbench[postgres]"', "postgresql://me:***@127.0.0.1:1/db"]
    path = tmp_path / f"{case}.journal"
    if case == "torn":  # a write cut short in the middle of the file
        path.write_text(f"{RECORD}\n{RECORD[:9]}\n{RECORD}\n")
        return f"journal:{path}", [f"journal file {path}, line 2"]
    path.write_text("hello world\n")  # garbage: not a journal at all
    return f"journal:{path}", [f"journal file {path}, line 1"]


def _tree(folder) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _command(command: str, url: str, tmp_path) -> list[str]:
    if command == "run":
        return ["study", "run", str(TINY), "--storage", url, f"logging.dir={tmp_path / 'runs'}"]
    if command == "worker":
        return ["study", "worker", "--storage", url, "--study", "x",
                "--output", str(tmp_path / "runs")]
    return ["report", "x", "--storage", url, "--out", str(tmp_path / "report")]


@pytest.mark.parametrize("case", ["unwritable", "under_a_file", "no_driver", "torn", "garbage"])
@pytest.mark.parametrize("command", ["run", "worker", "report"])
def test_storage_mistakes_are_one_paragraph_exit_2_and_write_nothing(tmp_path, command, case):
    url, wanted = _case(tmp_path, case)
    before = _tree(tmp_path)
    args = _command(command, url, tmp_path)
    if case == "no_driver":
        proc = subprocess.run([sys.executable, "-c", NO_PSYCOPG, *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
    else:
        proc = rnnbench(*args)
    err = proc.stderr
    assert proc.returncode == 2, err
    assert "Traceback" not in err and "secret" not in err + proc.stdout
    assert err.startswith(f"rnnbench {args[0]}: error: ") and err.count("\n") == 1, err
    for text in wanted:
        assert text in err
    assert _tree(tmp_path) == before  # nothing new, nothing touched
