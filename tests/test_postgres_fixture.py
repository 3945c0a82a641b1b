"""The throwaway PostgreSQL of the tests (tests/support/postgres.py) is not left running by a killed run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.support.deps import skip_or_fail
from tests.support.postgres import OWNER_FILE, PREFIX, find_bindir, sweep_orphans

# a test process that starts a cluster, says where, and is killed before it can stop it
KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from tests.support.postgres import _cluster
with _cluster(Path(sys.argv[1])) as url:
    print(url, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""

pytestmark = pytest.mark.postgres


def test_a_cluster_left_by_a_killed_run_is_stopped_and_removed(tmp_path: Path) -> None:
    bindir = find_bindir()
    if bindir is None:
        skip_or_fail("no /usr/lib/postgresql/*/bin/initdb (apt install postgresql)")
    assert bindir is not None
    child = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(bindir)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert child.returncode == -9, child.stderr
    url = child.stdout.strip().replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url, connect_timeout=5) as conn:  # left running
        assert conn.execute("SELECT 1").fetchone() == (1,)
    left = [d for d in Path("/tmp").glob(f"{PREFIX}*") if (d / "data").exists() and _port_of(d) in url]
    assert len(left) == 1
    # a cluster whose owner lives is not touched: this test process owns this one
    ours = tmp_path / f"{PREFIX}live"
    ours.mkdir()
    (ours / OWNER_FILE).write_text(str(os.getpid()))

    removed = sweep_orphans(bindir)
    assert left[0] in removed
    assert not left[0].exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    assert sweep_orphans(bindir, parent=tmp_path) == []
    assert ours.exists()


def _port_of(base: Path) -> str:
    """The port the cluster in `base` was started on (from its postmaster.pid: the fourth line)."""
    lines = (base / "data" / "postmaster.pid").read_text().splitlines()
    return f":{lines[3]}/" if len(lines) > 3 else "?"
