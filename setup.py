"""Ships configs/ inside the wheel as the package ``rnnbench.presets`` (a preset is found by
name after ``pip install .``); every other setting is in pyproject.toml."""

from pathlib import Path

from setuptools import find_packages, setup

PRESETS = "rnnbench.presets"
GROUPS = sorted(p.name for p in Path(__file__).resolve().parent.joinpath("configs").iterdir()
                if p.is_dir())

setup(
    packages=[*find_packages(include=["rnnbench*"]), PRESETS,
              *(f"{PRESETS}.{group}" for group in GROUPS)],
    package_dir={PRESETS: "configs"},
)
