"""Test helpers for several hosts on one machine: network namespaces on a bridge, and a
PostgreSQL cluster of the test's own listening on the bridge (root on Linux only).

    with Network(["a", "b"]) as net, PgCluster(net.gateway) as pg:
        proc = net.popen("b", [sys.executable, "-m", "rnnbench", ...], stdout=...)
        net.link("b", up=False)   # cut host b off the network
        pg.restart(down_s=2.0)

Each host is a network namespace ``rnb<tag><name>`` with its own UTS namespace per process
(so ``socket.gethostname()`` is ``rnb-<name>`` and the study sees separate machines), joined
by a veth pair to a bridge that holds the gateway address ``10.77.N.1/24``; host k is
``10.77.N.(10 + k)``. N is the first third octet no interface of this machine uses yet.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _run(*cmd: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kwargs)


def why_not() -> str | None:
    """Why namespaces and a test cluster cannot be made here, or ``None`` if they can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root (network namespaces, a PostgreSQL cluster run as user postgres)"
    for tool in ("ip", "unshare", "runuser"):
        if shutil.which(tool) is None:
            return f"the {tool!r} command is missing (Debian: apt-get install iproute2 util-linux)"
    if pg_bindir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl); run .ci/postgres.sh"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'rnnbench[postgres]')"
    name = f"rnbprobe{os.getpid() % 100000}"
    made = _run("ip", "netns", "add", name, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    _run("ip", "netns", "del", name, check=False)
    bridge = _run("ip", "link", "add", name[:15], "type", "bridge", check=False)
    if bridge.returncode != 0:
        return f"cannot create a bridge: {bridge.stderr.strip()}"
    _run("ip", "link", "del", name[:15], check=False)
    return None


def pg_bindir() -> Path | None:
    """The newest PostgreSQL server bin folder (Debian layout first, then PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()])
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_octet() -> int:
    used = _run("ip", "-o", "-4", "addr").stdout
    for n in range(0, 250):
        if f" 10.77.{n}." not in used:
            return n
    raise RuntimeError("every 10.77.N.0/24 is in use")


class Network:
    """A bridge with the gateway address and one namespace per host name."""

    def __init__(self, hosts: list[str]) -> None:
        self.hosts = list(hosts)
        self.tag = f"{os.getpid() % 10000}"
        self.octet = _free_octet()
        self.gateway = f"10.77.{self.octet}.1"
        self.bridge = f"rnbbr{self.tag}"
        self._made: list[tuple[str, str]] = []

    def ns(self, host: str) -> str:
        return f"rnb{self.tag}{host}"

    def veth(self, host: str) -> str:
        """The bridge-side end of the host's link (what :meth:`link` switches)."""
        return f"rnbv{self.tag}{host}"[:15]

    def address(self, host: str) -> str:
        return f"10.77.{self.octet}.{10 + self.hosts.index(host)}"

    def __enter__(self) -> Network:
        try:
            _run("ip", "link", "add", self.bridge, "type", "bridge")
            self._made.append(("link", self.bridge))
            _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
            for host in self.hosts:
                ns, outer, inner = self.ns(host), self.veth(host), f"rnbi{self.tag}{host}"[:15]
                _run("ip", "netns", "add", ns)
                self._made.append(("netns", ns))
                _run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
                self._made.append(("link", outer))
                _run("ip", "link", "set", inner, "netns", ns)
                _run("ip", "link", "set", outer, "master", self.bridge)
                _run("ip", "link", "set", outer, "up")
                inside = ("ip", "netns", "exec", ns, "ip")
                _run(*inside, "link", "set", "lo", "up")
                _run(*inside, "addr", "add", f"{self.address(host)}/24", "dev", inner)
                _run(*inside, "link", "set", inner, "up")
                _run(*inside, "route", "add", "default", "via", self.gateway)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for kind, name in reversed(self._made):
            if kind == "netns":
                _run("ip", "netns", "del", name, check=False)
            else:
                _run("ip", "link", "del", name, check=False)
        self._made.clear()

    def command(self, host: str, argv: list[str]) -> list[str]:
        """``argv`` run on ``host``: its network namespace, its own host name."""
        return ["ip", "netns", "exec", self.ns(host), "unshare", "--uts", "sh", "-c",
                'hostname "$0" && exec "$@"', f"rnb-{host}", *argv]

    def popen(self, host: str, argv: list[str], **kwargs) -> subprocess.Popen:
        """Starts ``argv`` on ``host``; the process is the command itself (every step execs),
        so its pid is the one the study records."""
        return subprocess.Popen(self.command(host, argv), **kwargs)

    def link(self, host: str, *, up: bool) -> None:
        _run("ip", "link", "set", self.veth(host), "up" if up else "down")


class PgCluster:
    """A throw-away PostgreSQL cluster on ``host``: role and database ``rnnbench``."""

    def __init__(self, host: str, port: int | None = None) -> None:
        self.host = host
        self.port = port or _free_port()
        self.bindir = pg_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="rnnbench-pg-"))
        self.data = self.root / "data"
        self.url = f"postgresql+psycopg://rnnbench:rnnbench@{host}:{self.port}/rnnbench"

    def _pg(self, tool: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return _run("runuser", "-u", "postgres", "--", str(self.bindir / tool), *args, **kwargs)

    def __enter__(self) -> PgCluster:
        shutil.chown(self.root, "postgres", "postgres")
        try:
            self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
                     "--auth-host=scram-sha-256", "--no-sync")
            with open(self.data / "postgresql.conf", "a") as fh:
                # A test cluster: durability off, quick to stop and start.
                fh.write(f"listen_addresses = '{self.host}'\nport = {self.port}\n"
                         f"unix_socket_directories = '{self.root}'\nfsync = off\n"
                         "synchronous_commit = off\nfull_page_writes = off\n"
                         "shared_buffers = 32MB\nmax_connections = 200\n")
            with open(self.data / "pg_hba.conf", "a") as fh:
                net = self.host.rsplit(".", 1)[0] + ".0/24"
                fh.write(f"host all all {net} scram-sha-256\n")
            self.start()
            sql = ("CREATE ROLE rnnbench LOGIN PASSWORD 'rnnbench';"
                   "CREATE DATABASE rnnbench OWNER rnnbench;")
            for stmt in sql.split(";")[:-1]:
                self._pg("psql", "-h", str(self.root), "-p", str(self.port), "-qtA",
                         "-v", "ON_ERROR_STOP=1", "-c", stmt)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                 "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop",
                 check=False)

    def restart(self, down_s: float = 2.0) -> None:
        """Stops the server (every connection is cut), waits ``down_s``, starts it again."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def log(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
