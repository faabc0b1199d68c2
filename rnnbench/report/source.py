"""Opening a study for a report (storage, folder or ``results.json``) and, for an unfinished
study, the command that resumes it."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ReportError(Exception):
    """A study cannot be found, opened or reported; the message is one paragraph for users.

    Attributes:
        table_shown: The table (with the counts) was printed before the error.
    """

    table_shown: bool = False


# ---------------------------------------------------------------------- opening a study
@dataclass
class StudySource:
    """What a report is built from.

    Attributes:
        results: The ``results.json`` mapping (``rnnbench.studies.collect``).
        run: The study in its storage, or ``None`` when only ``results.json`` was found (no
            optimisation history beyond the trial list, no parameter importance).
        folder: The study's output folder (``report/`` goes there by default), if known.
        paper: ``{"source", "dataset"}`` stored with the study (``study.paper``), if any.
    """

    results: dict[str, Any]
    run: Any = None
    folder: Path | None = None
    paper: dict[str, str] | None = None


def _storage_files(folder: Path) -> list[Path]:
    return [folder / f for f in ("study.journal", "study.db") if (folder / f).exists()]


def _studies_in(storage: Any) -> dict[str, dict[str, Any]]:
    """``{name: stored spec}`` of every rnnbench study (root studies) in an open storage."""
    from rnnbench.studies.ledger import rnnbench_studies

    return rnnbench_studies(storage)


def _folders_in(parent: Path) -> list[str]:
    if not parent.is_dir():
        return []
    return sorted(p.name for p in parent.iterdir() if p.is_dir() and (
        _storage_files(p) or (p / "results.json").exists()))


def open_source(study: str, *, storage: str | None = None, folder: str | Path | None = None,
                runs_dir: str | Path = "runs") -> StudySource:
    """Finds a study the way ``rnnbench report`` does.

    Args:
        study: A study name, or a study output folder (holding ``study.db`` /
            ``study.journal`` and/or ``results.json``).
        storage: A storage URL (as ``rnnbench study run --storage``); ``study`` is the name.
        folder: The study output folder; ``study`` is the name.
        runs_dir: Where a bare name is looked for: ``{runs_dir}/{study}/``.

    Over 60 lines: each way of naming a study (name, folder, storage) has its own error
    message, listing what exists there; they read best in one place.

    Raises:
        ReportError: No such study (the message lists the ones that exist), or the storage
            cannot be opened.
    """
    from rnnbench.config import ConfigError
    from rnnbench.studies.ledger import StudyRun
    from rnnbench.studies.storage import default_storage_url, open_storage, parse_storage_url

    name: str | None = study
    if storage is None and folder is None:
        if Path(study).is_dir() and (_storage_files(Path(study))
                                     or (Path(study) / "results.json").exists()):
            folder, name = Path(study), None
        else:
            folder = Path(runs_dir) / study
            if not folder.is_dir():  # run from another folder: where `study run` recorded it
                from rnnbench.studies.status import find_study

                entry = find_study(study)
                folder = Path(entry["folder"]) if entry else folder
            if not folder.is_dir():
                known = _folders_in(Path(runs_dir))
                raise ReportError(
                    f"no study {study!r}: {folder} does not exist (studies in {runs_dir}/: "
                    f"{', '.join(known) or 'none'}). Give the study's output folder, or its "
                    "storage with --storage URL, or the folder with --dir FOLDER"
                )
    folder = Path(folder) if folder is not None else None
    try:
        if storage is None:
            assert folder is not None
            if not folder.is_dir():
                raise ReportError(f"study folder {folder} does not exist")
            if not _storage_files(folder):
                return _from_results_json(folder, name)
            storage = default_storage_url(folder, 1)  # the existing journal or database
        parsed = parse_storage_url(storage)
        if parsed.path is not None and not parsed.path.exists():
            raise ReportError(f"storage file {parsed.path} does not exist")
        known = _studies_in(open_storage(parsed, create=False))
        if name is None:
            if len(known) != 1:
                raise ReportError(
                    f"{parsed.display} holds {len(known)} rnnbench studies "
                    f"({', '.join(sorted(known)) or 'none'}); name one: rnnbench report NAME "
                    f"--storage {parsed.display}")
            (name,) = known
        if name not in known:
            raise ReportError(
                f"no study {name!r} in {parsed.display}; studies there: "
                f"{', '.join(sorted(known)) or 'none'}")
        run = StudyRun.attach(parsed, name)
    except ConfigError as err:  # StorageError too
        raise ReportError(str(err)) from None
    from rnnbench.studies.results import collect

    if folder is None and parsed.path is not None:
        folder = parsed.path.parent
    elif folder is None:
        folder = run.spec.output_dir
    paper = getattr(run.spec, "paper", None) or known[name].get("paper")
    return StudySource(collect(run), run, folder, paper or None)


def _from_results_json(folder: Path, name: str | None) -> StudySource:
    path = folder / "results.json"
    if not path.exists():
        raise ReportError(f"{folder} holds no study: no study.db, study.journal or "
                          "results.json there")
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ReportError(f"cannot read {path}: {err}") from None
    if name is not None and results.get("study") != name:
        raise ReportError(f"no study {name!r} in {folder}; results.json there is of study "
                          f"{results.get('study')!r}")
    return StudySource(results, None, folder, None)



# ---------------------------------------------------------------------- an unfinished study
def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _comparable(spec_dict: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """The stored spec without what the launcher fills in after loading (the metric and its
    direction come from the task) or what names the file."""
    out = {k: v for k, v in spec_dict.items() if k != "source"}
    for key in ("metric", "direction", "test_metric"):
        if reference.get(key) is None:
            out.pop(key, None)
    return out


def _variant_overrides(stored: dict[str, Any]) -> list[str]:
    """Ways to write the stored variants as an override, shortest first."""
    model = stored["config"].get("model") or {}
    plain = all(v["num_layers"] == model.get("num_layers", 1)
                and v["bidirectional"] == model.get("bidirectional", False)
                for v in stored["variants"])
    names = "[" + ",".join(v["cell"] for v in stored["variants"]) + "]"
    out = [f"study.variants.cells={names}", f"study.variants={names}"] if plain else []
    return out + ["study.variants=" + json.dumps(stored["variants"], separators=(",", ":"))]


def _value(v: Any) -> str:
    """An override's value: a plain word as is, anything else as JSON (which YAML reads)."""
    if isinstance(v, str) and re.fullmatch(r"[A-Za-z_./~][\w./:~+-]*", v) and \
            v.lower() not in ("true", "false", "null", "none", "yes", "no", "on", "off"):
        return v
    return json.dumps(v, separators=(",", ":"))


def _study_run_overrides(stored: dict[str, Any], loaded: dict[str, Any]) -> list[str] | None:
    """The ``key=value`` overrides that turn the study file's spec into the stored one, or
    ``None`` where a stored setting cannot be written as an override."""
    out = []
    a, b = _flat(stored["config"]), _flat(loaded["config"])
    if set(b) - set(a):  # a key the file has and the study had not: no override removes it
        return None
    out += [f"{k}={_value(a[k])}" for k in sorted(a) if a[k] != b.get(k)]
    for key in ("name", "trials_per_variant", "seeds", "space", "overrides", "sampler",
                "pruner", "retries", "heartbeat_interval", "grace_period", "test_metric",
                "paper", "baselines", "description"):
        if stored.get(key) != loaded.get(key) and not (key == "test_metric"
                                                       and stored.get(key) is None):
            out.append(f"study.{key}={_value(stored.get(key))}")
    return out


def resume_command(run: Any) -> str:
    """The command that resumes a study, checked to rebuild the stored study exactly.

    ``rnnbench study run FILE [overrides] --storage URL`` when the study file it was started
    from is readable here and overrides rebuild the stored settings (verified by loading it
    again); otherwise ``rnnbench study worker``, which needs no file (the study's settings are
    in the storage) and runs every remaining trial, final re-runs included.

    Args:
        run: The study (:class:`rnnbench.studies.ledger.StudyRun`).
    """
    from rnnbench.config import ConfigError
    from rnnbench.studies.spec import load_study
    from rnnbench.studies.storage import STORAGE_ENV

    url = run.url.display
    where = (f"--storage {shlex.quote(url)}" if url == run.url.text
             else None)  # a password stays off the command line: the environment holds it
    env = "" if where else f"{STORAGE_ENV}={shlex.quote(url)} "
    stored = run.spec.to_dict()
    source = stored.get("source")
    if source and Path(source).is_file():
        try:
            loaded = load_study(source).to_dict()
            base = _study_run_overrides(stored, loaded)
            tries = [] if base is None else [base] if stored["variants"] == loaded[
                "variants"] else [[*base, v] for v in _variant_overrides(stored)]
            for extra in tries:
                again = load_study(source, extra).to_dict()
                if _comparable(again, again) == _comparable(stored, again):
                    words = ["rnnbench", "study", "run", source, *extra]
                    return env + " ".join(shlex.quote(w) for w in words) + \
                        (f" {where}" if where else "")
        except (ConfigError, OSError, KeyError, TypeError, ValueError):
            pass
    return (f"{env}rnnbench study worker --study {shlex.quote(run.spec.name)}"
            + (f" {where}" if where else ""))


def unfinished_note(source: StudySource) -> tuple[str, str | None] | None:
    """``(what is unfinished, the command that resumes it)`` for a study whose budget is not
    spent (the command is ``None`` without the storage); ``None`` for a finished study."""
    results = source.results
    if results.get("complete", True):
        return None
    parts = []
    for v in results["variants"]:
        if v.get("baseline"):
            continue
        t, final = v["trials"], v["final"]
        runs = sum(r["state"] in ("COMPLETE", "FAIL") for r in final["runs"])
        parts.append(f"{v['variant']} {t['done']}/{t['budget']} search trials, "
                     f"{runs}/{len(final['seeds'])} final runs")
    text = (f"study {results['study']!r} is unfinished ({'; '.join(parts)}): the table shows "
            "what is done so far.")
    if source.run is None:
        return (text + " Resume it by re-running the rnnbench study run command that started "
                "it.", None)
    return text, resume_command(source.run)


__all__ = ["ReportError", "StudySource", "open_source", "resume_command", "unfinished_note"]
