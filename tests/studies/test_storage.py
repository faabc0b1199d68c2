"""Storage URLs: parsing, defaults by worker count, clear errors for bad or dead ones."""

from __future__ import annotations

import time

import pytest

from rnnbench.studies.storage import (
    StorageError,
    default_storage_url,
    mask_password,
    mask_secrets,
    open_storage,
    parse_storage_url,
)


def test_parse_urls(tmp_path, monkeypatch):
    # A relative path is made absolute at once: the same file from any folder.
    monkeypatch.chdir(tmp_path)
    rel = parse_storage_url("sqlite:///runs/s/study.db")
    assert rel.path == tmp_path / "runs/s/study.db" and rel.text == f"sqlite:///{rel.path}"
    assert parse_storage_url("sqlite:////abs/study.db").path.as_posix() == "/abs/study.db"
    j = parse_storage_url("journal:///abs/study.journal")
    assert (j.kind, j.path.as_posix()) == ("journal", "/abs/study.journal")
    assert parse_storage_url("journal:runs/x.journal").path == tmp_path / "runs/x.journal"
    assert parse_storage_url("runs/x.journal").text == f"journal:{tmp_path}/runs/x.journal"
    assert parse_storage_url("runs/x.journal").kind == "journal"
    assert parse_storage_url("runs/x.db").kind == "sqlite"
    pg = parse_storage_url("postgres://u:secret@db:5432/r")
    assert pg.kind == "rdb" and pg.text.startswith("postgresql+psycopg://")
    assert "secret" not in pg.display and "***" in pg.display
    assert mask_password("mysql+pymysql://me:pw@h/db") == "mysql+pymysql://me:***@h/db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://localhost:6379/0", "unknown scheme 'redis'"),
        ("mongodb://h/db", "unknown scheme 'mongodb'"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("study.txt", "neither a URL"),
        ("", "empty"),
    ],
)
def test_bad_urls(url, message):
    with pytest.raises(StorageError, match=message):
        parse_storage_url(url)


def test_default_storage_follows_worker_count_and_existing_files(tmp_path):
    assert default_storage_url(tmp_path, 1).startswith("sqlite:///")
    assert default_storage_url(tmp_path, 4).startswith("journal:")
    (tmp_path / "study.db").write_bytes(b"")
    # an existing study keeps its storage when the worker count changes
    assert default_storage_url(tmp_path, 4).startswith("sqlite:///")


def test_open_file_storages(tmp_path):
    import optuna

    for url in (f"journal:{tmp_path}/a/s.journal", f"sqlite:///{tmp_path}/b/s.db"):
        storage = open_storage(url)
        optuna.create_study(study_name="x", storage=storage)
        assert [s.study_name for s in open_storage(url).get_all_studies()] == ["x"]


def test_unreachable_postgres_fails_fast_with_one_paragraph():
    t0 = time.monotonic()
    with pytest.raises(StorageError) as err:
        open_storage("postgresql+psycopg://u:pw@127.0.0.1:1/db")
    message = str(err.value)
    assert time.monotonic() - t0 < 30
    assert "cannot connect to the study storage" in message and "127.0.0.1:1" in message
    assert "pw" not in message.replace("password", "") and "\n" not in message


def test_passwords_are_masked_wherever_a_url_is_shown():
    url = parse_storage_url("postgresql+psycopg://me:s3cr%2Ft@db:5432/r")
    assert "s3cr" not in repr(url) and "s3cr" not in url.display
    assert url.display == "postgresql+psycopg://me:***@db:5432/r"
    # a driver's message may quote the password outside a URL, encoded or not
    assert url.redact("no: s3cr/t, s3cr%2Ft, postgresql://me:s3cr%2Ft@db") == \
        "no: ***, ***, postgresql://me:***@db"
    assert mask_password("mysql://u:pw@h/db?password=zz&x=1") == \
        "mysql://u:***@h/db?password=***&x=1"
    assert mask_password("sqlite:////a/b.db") == "sqlite:////a/b.db"


def test_secrets_in_a_config_are_masked_for_recording():
    cfg = {"data": {"url": "https://me:tok3n@host/x", "api_key": "k", "token": None,
                    "limit_tokens": 9, "max_token_len": 4},
           "logging": {"wandb": {"project": "p"}}, "layers": [{"password": "pw"}]}
    assert mask_secrets(cfg) == {
        "data": {"url": "https://me:***@host/x", "api_key": "***", "token": None,
                 "limit_tokens": 9, "max_token_len": 4},
        "logging": {"wandb": {"project": "p"}}, "layers": [{"password": "***"}]}
    assert cfg["data"]["api_key"] == "k"  # a copy
