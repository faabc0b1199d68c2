"""What a study keeps on its root Optuna study: the spec, results and baselines (system
attributes, so that ``optuna studies`` and optuna-dashboard stay readable) and one readable
summary line (its only user attribute)."""

from __future__ import annotations

from typing import Any

from rnnbench.config import ConfigError

SPEC_ATTR = "rnnbench:spec"
RESULTS_ATTR = "rnnbench:results"
SUMMARY_ATTR = "rnnbench"


def study_attr(storage: Any, study_id: int, key: str) -> Any:
    """A root study's stored payload (``SPEC_ATTR``, ``RESULTS_ATTR``, ...), or ``None``.

    Read from the study's system attributes; studies made before they moved there kept them
    as user attributes, which are read too.
    """
    system = storage.get_study_system_attrs(study_id)
    if key in system:
        return system[key]
    return storage.get_study_user_attrs(study_id).get(key)


def set_study_attr(storage: Any, study_id: int, key: str, value: Any) -> None:
    """Stores a payload where ``optuna studies`` does not print it (a system attribute)."""
    storage.set_study_system_attr(study_id, key, value)


def summary_line(spec: Any) -> str:
    """The root study's one readable user attribute, e.g. in ``optuna studies``."""
    return (f"rnnbench study: {len(spec.variants)} variant(s) "
            f"({', '.join(v.name for v in spec.variants)}) x {spec.trials_per_variant} "
            f"trial(s), {len(spec.seeds)} seed(s); metric {spec.metric or 'the task monitor'}")


def rnnbench_studies(storage: Any) -> dict[str, dict[str, Any]]:
    """``{name: stored spec}`` of every rnnbench study (root study) in an open storage."""
    out = {}
    for s in storage.get_all_studies():
        spec = s.system_attrs.get(SPEC_ATTR, s.user_attrs.get(SPEC_ATTR))
        if spec is not None:
            out[s.study_name] = spec
    return out


def stored_spec(storage: Any, name: str) -> dict[str, Any] | None:
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return None
    spec = study_attr(storage, study_id, SPEC_ATTR)
    if spec is None:
        raise ConfigError(f"the storage already holds an Optuna study named {name!r} that "
                          "rnnbench did not create; choose another study.name")
    return spec


__all__ = ["RESULTS_ATTR", "SPEC_ATTR", "SUMMARY_ATTR", "rnnbench_studies", "set_study_attr",
           "stored_spec", "study_attr", "summary_line"]
