"""Packaging: presets found by name from any folder (a local file wins), shipped in the
wheel; the command's start-up stays light (no torch for --help, --version)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

import rnnbench

ROOT = Path(__file__).resolve().parents[1]


def _rnnbench(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnnbench", *args], cwd=cwd,
                          env={**os.environ, "WANDB_MODE": "disabled", **(env or {})},
                          capture_output=True, text=True, timeout=120)


def test_presets_are_found_by_name_from_another_folder(tmp_path):
    out = _rnnbench("fit", "chung2014_jsb", "--print-config", "optim.lr=0.002", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(out.stdout)
    assert (cfg["name"], cfg["model"]["param_budget"], cfg["optim"]["lr"]) == \
        ("chung2014_jsb", 20000, 0.002)
    assert cfg["study"]["name"] == "chung2014_jsb"
    # the study loader resolves the same names (what `study run NAME` reads)
    code = ("from rnnbench.studies.spec import load_study; s = load_study('chung2014_jsb', "
            "quick=True); print(s.name, len(s.variants), s.source)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    name, variants, source = proc.stdout.split()
    assert (name, variants) == ("chung2014_jsb_quick", "3")
    assert Path(source).is_absolute() and Path(source).name == "chung2014_jsb.yaml"


def test_a_local_file_wins_over_the_preset_of_the_same_name(tmp_path):
    (tmp_path / "quickstart.yaml").write_text(
        "defaults: {model: gru_small, data: jsb_chorales, trainer: cpu}\n"
        "optim: {lr: 0.123}\n")
    (tmp_path / "configs" / "model").mkdir(parents=True)
    (tmp_path / "configs" / "model" / "gru_small.yaml").write_text(
        "cell: lstm\nhidden_size: 7\n")
    out = _rnnbench("fit", "quickstart", "--print-config", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(out.stdout)
    assert cfg["optim"]["lr"] == 0.123  # ./quickstart.yaml, not the preset
    assert (cfg["model"]["cell"], cfg["model"]["hidden_size"]) == ("lstm", 7)  # ./configs/
    assert cfg["data"]["dataset"] == "jsb_chorales"  # groups it does not have: the presets'


def test_an_unknown_name_is_one_paragraph_with_the_closest_preset(tmp_path):
    out = _rnnbench("fit", "chung2014_jbs", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "did you mean 'chung2014_jsb'" in out.stderr and "quickstart" in out.stderr


def test_help_and_version_import_no_torch(tmp_path):
    code = ("import sys\nfrom rnnbench.cli import build_parser\n"
            "build_parser().format_help()\n"
            "heavy = [m for m in ('torch', 'lightning', 'optuna', 'wandb', 'pandas', 'scipy') "
            "if m in sys.modules]\nassert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = _rnnbench("--version", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"rnnbench {rnnbench.__version__}"


def test_the_wheel_ships_the_presets_and_finds_them_installed(tmp_path):
    """`pip install .` (not editable): configs/ travels as rnnbench/presets."""
    dist, target = tmp_path / "dist", tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(dist), str(ROOT)], capture_output=True, text=True,
                           timeout=600)
    if build.returncode != 0 and "setuptools" in build.stderr + build.stdout:
        pytest.skip("no setuptools to build the wheel with")  # no index and no setuptools
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("rnnbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"rnnbench/presets/{p.relative_to(ROOT / 'configs').as_posix()}"
               for p in (ROOT / "configs").rglob("*.yaml")}
    assert shipped and shipped <= names
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)
    code = ("import rnnbench, rnnbench.config as c; "
            "print(rnnbench.__file__); print(c.config_root()); "
            "print(c.load_config('chung2014_jsb', ['model=gru_small'])['model']['cell'])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(target)})
    assert proc.returncode == 0, proc.stderr
    module, root, cell = proc.stdout.split()
    assert module.startswith(str(target)) and root == str(target / "rnnbench" / "presets")
    assert cell == "gru"
