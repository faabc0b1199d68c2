"""The report and studies packages load their submodules only when a name is used."""

import subprocess
import sys

import pytest


def test_importing_the_packages_loads_no_heavy_dependency():
    code = (
        "import sys, rnnbench.report, rnnbench.studies\n"
        "heavy = [m for m in ('pandas', 'matplotlib', 'optuna', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from rnnbench.report import welch_pvalue\n"
        "assert 'rnnbench.report.stats' in sys.modules and 'pandas' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("package", ["rnnbench.report", "rnnbench.studies"])
def test_every_export_resolves_and_unknown_names_raise(package):
    import importlib

    pkg = importlib.import_module(package)
    for name in pkg.__all__:
        assert getattr(pkg, name) is not None
        assert name in vars(pkg)  # cached after the first lookup
    assert dir(pkg) == sorted(pkg.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        getattr(pkg, "nope")  # noqa: B009
