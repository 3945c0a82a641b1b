"""A PostgreSQL server for tests: LINSTOR_NAMES_TEST_PG_URL, or a throwaway cluster of Debian's binaries.

The throwaway cluster lives in a temporary directory, listens on 127.0.0.1 on a free port and is stopped
(by its own pg_ctl, so only the server started here) at the end. A run that was killed cannot stop its
cluster: its directory names the test process that owned it, and the next cluster's start stops and removes
those whose owner is gone. initdb refuses to run as root: as root,
every PostgreSQL binary runs as the `postgres` system user. When no server can be had the tests skip,
except under CI=true where they fail: no test may skip in CI for a missing dependency.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.support.server import free_port

URL_ENV = "LINSTOR_NAMES_TEST_PG_URL"
SYSTEM_USER = "postgres"
PREFIX = "linstor-names-pg-"
OWNER_FILE = "owner.pid"  # the PID of the test process that started the cluster


class PostgresUnavailable(RuntimeError):
    """Neither LINSTOR_NAMES_TEST_PG_URL nor PostgreSQL's binaries are available."""


def find_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb and pg_ctl."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(candidates[-1]).parent if candidates else None


@contextmanager
def postgres_server() -> Iterator[str]:
    """A server URL (psycopg 3 driver) whose user may create databases."""
    url = os.environ.get(URL_ENV)
    if url:
        yield url
        return
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            f"no {URL_ENV} and no /usr/lib/postgresql/*/bin/initdb (apt install postgresql)"
        )
    with _cluster(bindir) as url:
        yield url


def _run(bindir: Path, *args: str, log: Path | None = None) -> None:
    """A PostgreSQL binary of `bindir`, as the `postgres` user when this process is root."""
    command = [str(bindir / args[0]), *args[1:]]
    if os.geteuid() == 0:
        command = ["runuser", "-u", SYSTEM_USER, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        logged = log.read_text(errors="replace") if log is not None and log.exists() else ""
        raise PostgresUnavailable(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}{logged}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        pass
    return True


def sweep_orphans(bindir: Path, parent: Path = Path("/tmp")) -> list[Path]:
    """Stop and remove the throwaway clusters whose test process is gone (a run killed before its end);
    the directories removed. A cluster without an owner file, or whose owner lives, is left alone."""
    removed = []
    for base in parent.glob(f"{PREFIX}*"):
        try:
            owner = int((base / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        if (base / "data" / "postmaster.pid").exists():
            try:
                _run(bindir, "pg_ctl", "-D", str(base / "data"), "-m", "immediate", "-w", "stop")
            except PostgresUnavailable:
                continue  # not stopped: keep its files, a later sweep tries again
        shutil.rmtree(base, ignore_errors=True)
        removed.append(base)
    return removed


@contextmanager
def _cluster(bindir: Path) -> Iterator[str]:
    sweep_orphans(bindir)
    user = pwd.getpwnam(SYSTEM_USER) if os.geteuid() == 0 else None
    # postgres must reach the data directory: /tmp, not a private temp dir of root's
    base = Path(tempfile.mkdtemp(prefix=PREFIX, dir="/tmp"))
    (base / OWNER_FILE).write_text(str(os.getpid()))
    data, log = base / "data", base / "server.log"
    if user is not None:
        os.chown(base, user.pw_uid, user.pw_gid)
    port = free_port()

    def run(*args: str) -> None:
        _run(bindir, *args, log=log)

    started = False
    try:
        run(
            "initdb",
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        started = True
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server (dropped on exit): each test gets its own."""
    url = make_url(server_url)
    name = f"linstor_names_test_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
