"""`rnnbench study run/worker` on bad input: one paragraph, exit 2, nothing written."""

from __future__ import annotations

import pytest

from rnnbench.cli import main

from .conftest import TINY


def _study_file(tmp_path, study: str) -> str:
    path = tmp_path / "study.yaml"
    path.write_text(
        "defaults: {data: jsb_chorales, trainer: cpu}\n"
        "data: {limit_pieces: 12, batch_size: 4}\n"
        f"logging: {{dir: {tmp_path / 'runs'}, progress_bar: false}}\n"
        f"study: {study}\n")
    return str(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["study.variants={cells: [lstm, foo]}"], "unknown cell 'foo'; registered cells are"),
        (["study.overrides.lstn={lr: 0.1}"], "unknown cell or variant 'lstn'"),
        (["study.trials_per_variant=0"], "trials_per_variant must be a positive integer"),
        (["--storage", "redis://localhost/0"], "unknown scheme 'redis'"),
        (["--workers", "0"], "--workers must be a positive integer"),
        (["--storage", "postgresql+psycopg://me:secret@127.0.0.1:1/db"],
         "cannot connect to the study storage postgresql+psycopg://me:***@127.0.0.1:1/db"),
        (["study.metric=val/acc"], "study.metric 'val/acc' is not logged by the 'music' task"),
        (["study.test_metric=test/acc"],
         "study.test_metric 'test/acc' is not logged by the 'music' task"),
        (["study.paper={source: chung2014, dataset: mnist}"],
         "study.paper chung2014:mnist has no published figures; known: "),
        (["study.paper={source: bai2018, dataset: jsb_chorales, against: tnc}"],
         "study.paper.against 'tnc': bai2018 has no jsb_chorales row of that name; its rows: "
         "gru, lstm, rnn_tanh, tcn"),
    ],
)
def test_bad_input_is_one_clear_paragraph(tmp_path, capsys, args, message):
    rc = main(["study", "run", str(TINY), f"logging.dir={tmp_path / 'runs'}", *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("rnnbench study: error: ") and message in err
    assert "Traceback" not in err and err.count("\n") == 1 and "secret" not in err
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_empty_space_and_unknown_study(tmp_path, capsys):
    rc = main(["study", "run", _study_file(tmp_path, "{variants: [lstm], space: {}}")])
    assert rc == 2 and "search space is empty" in capsys.readouterr().err
    rc = main(["study", "worker", "--storage", f"journal:{tmp_path}/none.journal",
               "--study", "x"])
    assert rc == 2 and "does not exist; start the study" in capsys.readouterr().err


def test_worker_reads_the_storage_from_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RNNBENCH_STORAGE", raising=False)
    rc = main(["study", "worker", "--study", "x"])
    assert rc == 2 and "set RNNBENCH_STORAGE=URL" in capsys.readouterr().err
    monkeypatch.setenv("RNNBENCH_STORAGE", f"journal:{tmp_path}/none.journal")
    rc = main(["study", "worker", "--study", "x"])
    assert rc == 2 and "none.journal does not exist" in capsys.readouterr().err
