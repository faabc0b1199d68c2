"""Study storages by URL: SQLite (one worker), journal file (one machine), PostgreSQL (many)."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rnnbench.config import ConfigError
from rnnbench.redact import MASK, _secrets, mask_password, mask_secrets, redact  # noqa: F401

RDB_DIALECTS = ("postgresql", "mysql", "mariadb", "oracle", "mssql")
# How long a server storage's calls wait for it to come back, without the study's settings
# (3 x the default grace period), and the longest pause between two tries.
DEFAULT_PATIENCE_S, MAX_WAIT_S = 270.0, 8.0
# Where workers (and users who keep passwords off command lines) put the storage URL: the
# launcher hands it to its workers here, never on their command line, which every user of
# the machine can read (`ps`, /proc/PID/cmdline) and W&B would otherwise record.
STORAGE_ENV = "RNNBENCH_STORAGE"
HINT = (
    "use sqlite:///PATH.db (one worker), journal:///PATH.journal (several workers on one "
    "machine) or postgresql+psycopg://USER:PASSWORD@HOST:5432/DB (several machines)"
)


class StorageError(ConfigError):
    """A storage URL is malformed, names an unknown scheme, or the server cannot be reached."""


@dataclass(frozen=True)
class StorageURL:
    """A parsed storage location.

    Attributes:
        kind: ``sqlite``, ``journal`` or ``rdb`` (a database server).
        url: What Optuna is given (an SQLAlchemy URL, or the journal file path).
        path: The local file of a ``sqlite`` / ``journal`` storage, else ``None``.
        text: The URL as the user wrote it (normalised), for workers to join with.
    """

    kind: str
    url: str = field(repr=False)
    path: Path | None
    text: str = field(repr=False)

    def __repr__(self) -> str:  # a repr in a log or traceback must not carry the password
        return f"StorageURL(kind={self.kind!r}, display={self.display!r})"

    @property
    def display(self) -> str:
        """The URL with any password replaced by ``***``."""
        return mask_password(self.text)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The password of the URL as written and URL-decoded (empty without one)."""
        return _secrets(self.text)

    def redact(self, text: str) -> str:
        """``text`` (an error message, a traceback) with this URL's password masked."""
        return redact(text, self.text)

    @property
    def heartbeat_native(self) -> bool:
        """Whether Optuna's own heartbeat table is available (every RDB, SQLite included)."""
        return self.kind in ("sqlite", "rdb")


def storage_from_env() -> str | None:
    """The storage URL in ``RNNBENCH_STORAGE``, if set."""
    return os.environ.get(STORAGE_ENV, "").strip() or None


def parse_storage_url(text: str) -> StorageURL:
    """Parses a storage URL or file path without touching the storage.

    Accepted: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``journal:///abs/path``,
    ``journal:relative/path``, a plain ``*.journal`` / ``*.log`` / ``*.db`` path, and any
    SQLAlchemy database URL (``postgresql+psycopg://user:pw@host:5432/db``, ``mysql+pymysql://``).
    A relative file path is made absolute (from the working folder) here.

    Raises:
        StorageError: Unknown scheme or a URL that cannot name a shared storage.
    """
    text = str(text).strip()
    if not text:
        raise StorageError(f"the storage URL is empty; {HINT}")
    if "://" not in text and not text.startswith("journal:"):
        suffix = Path(text).suffix
        if suffix in (".journal", ".log"):
            return parse_storage_url(f"journal:{text}")
        if suffix in (".db", ".sqlite", ".sqlite3"):
            return parse_storage_url(f"sqlite:///{text}")
        raise StorageError(f"storage {text!r} is neither a URL nor a .journal/.db file; {HINT}")
    if text.startswith("journal:"):
        path = text[len("journal:"):]
        path = path[2:] if path.startswith("//") else path
        if not path:
            raise StorageError(f"storage {text!r} names no journal file; {HINT}")
        path = os.path.abspath(path)  # the same file from any folder (workers, report)
        return StorageURL("journal", path, Path(path), f"journal:{path}")
    scheme = text.split("://", 1)[0].lower()
    dialect = scheme.split("+", 1)[0]
    if dialect == "sqlite":
        path = text.split("://", 1)[1]
        if path in ("", "/", "/:memory:") or ":memory:" in path:
            raise StorageError(
                f"storage {text!r} is an in-memory database, which worker processes cannot "
                f"share; {HINT}"
            )
        if not path.startswith("/"):
            raise StorageError(f"storage {text!r}: write sqlite:///relative.db or "
                               "sqlite:////absolute/path.db")
        if "?" in path:  # driver options after the path: kept as written
            return StorageURL("sqlite", text, Path(path[1:].split("?", 1)[0]), text)
        # Resolved now, so that the same file is meant from any folder (workers, report).
        text = f"sqlite:///{os.path.abspath(path[1:])}"
        return StorageURL("sqlite", text, Path(text[len("sqlite:///"):]), text)
    if dialect == "postgres":  # Heroku-style alias SQLAlchemy does not accept
        text, scheme, dialect = "postgresql" + text[len(scheme):], "postgresql", "postgresql"
    if dialect not in RDB_DIALECTS:
        raise StorageError(f"storage URL {mask_password(text)!r} has an unknown scheme "
                           f"{scheme!r}; {HINT}")
    if scheme == "postgresql" and importlib.util.find_spec("psycopg2") is None and (
        importlib.util.find_spec("psycopg") is not None
    ):
        # SQLAlchemy's default PostgreSQL driver is psycopg2; rnnbench ships psycopg 3.
        text = "postgresql+psycopg" + text[len("postgresql"):]
    parts = urlsplit(text)
    if not parts.hostname and dialect != "postgresql":
        raise StorageError(f"storage URL {mask_password(text)!r} names no host; {HINT}")
    return StorageURL("rdb", text, None, text)


def default_storage_url(output_dir: str | Path, workers: int) -> str:
    """The storage a study uses when the file and command line name none.

    An existing ``study.db`` or ``study.journal`` in ``output_dir`` is reused (so re-running
    with another ``--workers`` resumes the same study); otherwise one worker gets SQLite and
    several get a journal file, which needs no database locks across processes.
    """
    out = Path(output_dir)
    if (out / "study.journal").exists():
        return f"journal:{out / 'study.journal'}"
    if (out / "study.db").exists():
        return f"sqlite:///{out / 'study.db'}"
    if workers <= 1:
        return f"sqlite:///{out / 'study.db'}"
    return f"journal:{out / 'study.journal'}"


def _connect_error(parsed: StorageURL, err: BaseException) -> StorageError:
    detail = str(getattr(err, "orig", None) or err).strip().splitlines()
    reason = parsed.redact(detail[0]) if detail else type(err).__name__
    if parsed.kind == "sqlite":  # a file, not a server
        return StorageError(
            f"cannot open the SQLite study storage {parsed.path}: {reason}. Check that its "
            "folder is writable and that the file, if it exists, is an SQLite database"
        )
    parts = urlsplit(parsed.text)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 'default port'}"
    return StorageError(
        f"cannot connect to the study storage {parsed.display} at {where}: {reason}. Is the "
        "database server running and reachable, and are the user, password and database "
        "name right? (For a local test server run .ci/postgres.sh.)"
    )


def _driver_error(parsed: StorageURL) -> StorageError:
    return StorageError(
        f"the database driver for {parsed.display} is not installed: install it with "
        'pip install "rnnbench[postgres]" (psycopg 3) and use a postgresql+psycopg:// URL'
        if parsed.text.startswith("postgres") else
        f"the database driver for {parsed.display} is not installed (SQLAlchemy names it "
        "in the URL after '+'); install it, or use PostgreSQL with "
        'pip install "rnnbench[postgres]"'
    )


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def check_storage(url: str | StorageURL) -> StorageURL:
    """Checks what can be checked without writing anything: the database driver of a server
    URL, and that the folder of a storage file is (or can be made) a writable folder.

    Raises:
        StorageError: What is wrong, in one paragraph.
    """
    parsed = url if isinstance(url, StorageURL) else parse_storage_url(url)
    if parsed.kind == "rdb":
        scheme = parsed.text.split("://", 1)[0]
        if scheme.startswith("postgresql"):  # PostgreSQL drivers are named as their modules
            driver = scheme.split("+", 1)[1] if "+" in scheme else "psycopg2"
            if not _has_module(driver):
                raise _driver_error(parsed)
        return parsed  # other servers' drivers are found (or not) when the storage opens
    path = parsed.path
    assert path is not None
    if path.exists():
        if path.is_dir():
            example = path / ("study.journal" if parsed.kind == "journal" else "study.db")
            raise StorageError(f"storage file {path} is a folder; name a file in it, e.g. "
                               f"{example}")
        if not os.access(path, os.R_OK | os.W_OK):
            raise StorageError(f"storage file {path} cannot be read and written by this user")
        return parsed
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise StorageError(f"cannot create storage file {path}: {folder} is a file, not a "
                           "folder; choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StorageError(f"cannot create storage file {path}: {folder} is not writable by "
                           "this user; choose another path")
    return parsed


def check_journal(path: Path) -> None:
    """Refuses a journal file Optuna would fail on (or silently misread): every complete line
    must be one JSON journal record. An unfinished last line is a write in progress and is
    left to Optuna.

    Raises:
        StorageError: Names the file and the first bad line.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise StorageError(f"cannot read the journal file {path}: {err.strerror or err}") \
            from None
    lines = data.split(b"\n")
    for number, line in enumerate(lines[:-1], start=1):  # lines[-1]: after the last newline
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or "op_code" not in record:
            shown = line[:60].decode("utf-8", errors="replace")
            raise StorageError(
                f"journal file {path}, line {number} is not an Optuna journal record "
                f"({shown!r}{'...' if len(line) > 60 else ''}): the file is damaged (a write "
                "cut short in the middle) or not a study journal. Keep a copy, then delete "
                f"that line to resume, or start the study in a new file"
            )
def _serialize_sqlite(engine: Any) -> None:
    """Makes every SQLite transaction ``BEGIN IMMEDIATE``.

    Optuna claims a WAITING trial with ``SELECT ... FOR UPDATE`` and then an ``UPDATE``;
    SQLite ignores ``FOR UPDATE`` and Python's driver runs the ``SELECT`` outside any
    transaction, so two processes could both read WAITING and both run the trial (measured:
    4 processes claimed 20 times from 18 slots). An immediate transaction takes SQLite's write
    lock before the read, which makes read-then-write atomic across processes.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver must not issue its own BEGIN

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the hooks existed


def _open_journal(parsed: StorageURL) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    assert parsed.path is not None
    if parsed.path.exists():
        check_journal(parsed.path)
    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(parsed.path)))
    except OSError as err:
        raise StorageError(f"cannot open the journal file {parsed.path}: "
                           f"{err.strerror or err}") from None
    except (ValueError, KeyError, TypeError, IndexError) as err:
        # Well-formed records that do not replay (e.g. a trial of an unknown study).
        raise StorageError(f"journal file {parsed.path} cannot be replayed "
                           f"({type(err).__name__}: {err}); it is damaged or was not "
                           "written by Optuna") from None


def _open_rdb(parsed: StorageURL, heartbeat: dict[str, int], patience: float) -> Any:
    import optuna
    import sqlalchemy.exc

    engine_kwargs: dict[str, Any] = {}
    retrying: dict[str, Any] = {}
    if parsed.kind == "sqlite":
        # A file: nothing restarts under it, and its lasting errors (read-only, no such
        # table) would only be repeated. SQLite waits for its lock by itself (timeout).
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
        if parsed.text.startswith(("postgresql", "mysql", "mariadb")):
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
        retrying = {"patience": patience, "max_wait_s": min(
            MAX_WAIT_S, float(heartbeat.get("heartbeat_interval") or MAX_WAIT_S))}
    try:
        with warnings.catch_warnings():  # heartbeat_interval is "experimental" since 2.x
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if retrying:  # a server: its calls wait out a restart (see studies/retry.py)
                from rnnbench.studies.retry import RetryingRDBStorage

                storage = RetryingRDBStorage(parsed.url, engine_kwargs=engine_kwargs,
                                             **heartbeat, **retrying)
            else:
                storage = optuna.storages.RDBStorage(parsed.url, engine_kwargs=engine_kwargs,
                                                     **heartbeat)
        if parsed.kind == "sqlite":
            _serialize_sqlite(storage.engine)
        return storage
    except ImportError:
        raise _driver_error(parsed) from None
    except sqlalchemy.exc.ArgumentError as err:
        raise StorageError(f"storage URL {parsed.display} is malformed ({err}); {HINT}") from None
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as err:
        raise _connect_error(parsed, err) from None
    except sqlalchemy.exc.DBAPIError as err:
        raise _connect_error(parsed, err) from None


def open_storage(
    url: str | StorageURL,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    create: bool = True,
    patience: float | None = None,
) -> Any:
    """Opens (and for files, creates) the Optuna storage at ``url``.

    A database server's storage retries its calls through a restart (see
    :mod:`rnnbench.studies.retry`); opening it does not: an unreachable server fails at once.

    Args:
        url: A storage URL (see :func:`parse_storage_url`).
        heartbeat_interval: Seconds between a running trial's heartbeats (RDB storages).
        grace_period: Seconds without a heartbeat after which a running trial is stale.
        create: Create the parent folder of a file storage.
        patience: Seconds a database server may stay unreachable before a call fails
            (default: 3 x ``grace_period``, or 270 s without one).

    Raises:
        StorageError: Bad URL, missing database driver, an unwritable or damaged file, or an
            unreachable server; nothing is written then.
    """
    parsed = url if isinstance(url, StorageURL) else parse_storage_url(url)
    if parsed.path is not None and not create and not parsed.path.exists():
        raise StorageError(f"storage file {parsed.path} does not exist")
    check_storage(parsed)
    if parsed.path is not None and create:
        try:
            parsed.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(f"cannot create the folder {parsed.path.parent} for the "
                               f"storage file {parsed.path}: {err.strerror or err}; "
                               "choose a path on a writable disk") from None
    if parsed.kind == "journal":
        return _open_journal(parsed)
    heartbeat = {}
    if heartbeat_interval:
        heartbeat = {"heartbeat_interval": int(heartbeat_interval),
                     "grace_period": int(grace_period or 4 * heartbeat_interval)}
    if patience is None:
        patience = 3 * heartbeat["grace_period"] if heartbeat else DEFAULT_PATIENCE_S
    return _open_rdb(parsed, heartbeat, patience)


@functools.cache
def _transient_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    import sqlalchemy.exc as sa

    transient: list[type] = [sa.OperationalError, sa.InterfaceError, sa.DisconnectionError]
    try:
        import psycopg

        transient.append(psycopg.OperationalError)
    except ImportError:
        pass
    return tuple(transient), (sa.IntegrityError,)


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` is a storage error that goes away by itself: a dropped or refused
    connection, a server shutting down or starting up (SQLAlchemy ``OperationalError``,
    ``InterfaceError``, ``DisconnectionError``, or psycopg's ``OperationalError``), anywhere
    in its chain of causes (Optuna re-raises them as ``StorageInternalError``). A constraint
    violation (``IntegrityError``) anywhere in the chain never is: repeating it cannot help.
    """
    transient, never = _transient_types()
    found, seen = False, set()
    todo: list[BaseException | None] = [err]
    while todo:
        link = todo.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        if isinstance(link, never):
            return False
        found = found or isinstance(link, transient)
        todo += [link.__cause__, link.__context__]
    return found


def error_line(err: BaseException) -> str:
    """``Type: first line`` of the deepest cause of ``err``: a driver's own message (what
    Optuna's ``StorageInternalError`` and SQLAlchemy's wrappers hide). May quote a URL: redact
    it before showing it."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = str(getattr(err, "orig", None) or err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


__all__ = ["STORAGE_ENV", "StorageError", "StorageURL", "check_journal", "check_storage",
           "default_storage_url", "error_line", "is_transient", "mask_password", "mask_secrets",
           "open_storage", "parse_storage_url", "redact", "storage_from_env"]
