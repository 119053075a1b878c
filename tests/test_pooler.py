"""PostgreSQL behind PgBouncer in transaction pooling: the source is still read-only, in ISO dates and UTC.

PgBouncer (before 1.20, and later ones for settings it does not track) refuses the ``options`` startup
parameter that carries those settings, and the connection failed with "unsupported startup parameter:
options"; set to ignore it, it dropped them without a word, and the source was neither read-only nor in
ISO dates. The settings then open every transaction instead (``db._pg_transaction_settings``). These
tests start a PgBouncer of their own when the binary is installed (``apt-get install pgbouncer``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from pipeline.db import open_source
from pipeline.errors import ExtractError
from pipeline.extract import stream_partitions

pytest_plugins = ["tests.dbfixtures"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=["", "ignore_startup_parameters = options\n"],
                ids=["refusing options", "ignoring options"])
def pooled_url(pg_url: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    """``pg_url`` through a PgBouncer in transaction pooling mode: with its default settings, which refuse
    the ``options`` startup parameter, and set to drop it without a word (a common setting, for JDBC
    clients), which left the session in the server's own DateStyle and not read-only."""
    binary = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer") if Path(p).exists()), None)
    if binary is None:
        pytest.skip("PgBouncer is not installed (apt-get install pgbouncer)")
    target = urllib.parse.urlsplit(pg_url)
    port = _free_port()
    home = tmp_path_factory.mktemp("pgbouncer")
    (home / "users.txt").write_text(f'"{target.username}" ""\n')
    (home / "pgbouncer.ini").write_text(
        f"[databases]\n* = host={target.hostname} port={target.port or 5432}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {home / 'users.txt'}\npool_mode = transaction\n{request.param}")
    command = [binary, str(home / "pgbouncer.ini")]
    if os.geteuid() == 0:                        # PgBouncer will not run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root, and there is no postgres OS user for PgBouncer to run as")
        home.chmod(0o755)
        for path in home.iterdir():
            path.chmod(0o644)
        command[1:1] = ["-u", "postgres"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"PgBouncer did not start: {proc.communicate()[1][-1000:]}")
                time.sleep(0.05)
        yield target._replace(netloc=f"{target.username}@127.0.0.1:{port}").geturl()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.postgres
def test_through_pgbouncer_the_source_is_read_only_in_iso_dates_and_utc(pooled_url: str) -> None:
    with open_source(pooled_url) as source:
        assert source.through_pooler
        # each statement is a transaction of its own, on whichever server connection the pooler lends
        assert [source.scalar(f"SHOW {name}") for name in ("transaction_read_only", "DateStyle", "TimeZone")] \
            == ["on", "ISO, YMD", "UTC"]
        with pytest.raises(ExtractError, match="read-only transaction"):
            source.scalar("CREATE TABLE cm_pooled_write (x int)")


@pytest.mark.postgres
def test_extraction_through_pgbouncer_equals_the_direct_one(
        pg_url: str, pooled_url: str, admin_execute: Callable[[str, str], None], tmp_path: Path) -> None:
    admin_execute(pg_url, "DROP TABLE IF EXISTS cm_pooled")
    admin_execute(pg_url, "CREATE TABLE cm_pooled (id int PRIMARY KEY, at timestamptz, d date, name text)")
    admin_execute(pg_url, "INSERT INTO cm_pooled SELECT i, TIMESTAMPTZ '2024-05-01 10:00:00+09' + i * INTERVAL "
                          "'1 hour', DATE '1990-01-31' + i, 'Ann, \"the\" ' || i FROM generate_series(1, 2500) i")
    sql = tmp_path / "pooled.sql"
    sql.write_text("SELECT id, at, d, name, current_setting('transaction_read_only') AS ro FROM cm_pooled "
                   "ORDER BY id")
    frames = {}
    for label, url in (("direct", pg_url), ("pooled", pooled_url)):
        with open_source(url) as source:
            assert source.through_pooler is (label == "pooled")
            frames[label] = pd.concat(list(stream_partitions(source, sql, {}, 1000)))
    pd.testing.assert_frame_equal(frames["pooled"], frames["direct"])
    assert frames["pooled"]["at"].iloc[0] == "2024-05-01 02:00:00+00"
    assert set(frames["pooled"]["ro"]) == {"on"}
