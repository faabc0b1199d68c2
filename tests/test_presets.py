"""Every experiment preset loads, names real cells and data, and builds (its quick form)."""

from pathlib import Path

import pytest
import yaml

from rnnbench.experiment import build, load_config

ROOT = Path(__file__).resolve().parent.parent
PRESETS = sorted((ROOT / "configs" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_is_valid(path):
    text = path.read_text()
    first = text.splitlines()[0]
    assert first.startswith("# rnnbench ") and path.name in first, "first line runs the file"
    raw = yaml.safe_load(text)
    quick = "quick" in raw
    if "study" in raw:
        from rnnbench.studies.pool import preflight
        from rnnbench.studies.spec import load_study

        spec = load_study(path, quick=quick)
        sizes = preflight(spec)
        assert set(sizes) == {v.name for v in spec.variants}
        if spec.baselines:
            from rnnbench.studies.baselines import check_baselines

            check_baselines(spec)  # each baseline scores this preset's task
        if spec.paper:
            from rnnbench.report.published import load_published

            assert any(p.source == spec.paper["source"] and p.dataset == spec.paper["dataset"]
                       for p in load_published())
    else:
        cfg = load_config(path, quick=quick)
        module, datamodule, bundle = build(cfg)
        assert module.num_parameters() > 0


def test_quick_needs_a_quick_section(tmp_path):
    from rnnbench.experiment import ConfigError

    cfg = tmp_path / "plain.yaml"
    cfg.write_text("data: {dataset: adding}\n")
    with pytest.raises(ConfigError, match="has no quick: section"):
        load_config(cfg, quick=True)


SMOKE_STUDIES = {"jsb_tiny"}  # one-minute smoke studies (their header says so), not results
STUDIES = sorted(p for p in [*PRESETS, *(ROOT / "configs" / "study").glob("*.yaml")]
                 if "study" in yaml.safe_load(p.read_text()) and p.stem not in SMOKE_STUDIES)


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_cpu_study_presets_rerun_at_least_five_seeds(path):
    """Issue #14: final runs default to >= 5 seeds in every CPU preset."""
    from rnnbench.studies.spec import load_study

    spec = load_study(path)
    if spec.config["trainer"].get("accelerator", "cpu") not in ("cpu", "auto"):
        pytest.skip("a GPU preset")
    assert len(spec.seeds) >= 5, f"{path.name} re-runs {len(spec.seeds)} seeds"
