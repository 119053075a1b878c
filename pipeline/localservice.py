"""Find or start the local Cognito import service that ``make migrate`` talks to by default.

The service runs as its own process (``python -m pipeline.localcognito``) so that its pools outlive
one migrate run: a rerun then sees the users the first run imported, exactly as it would on AWS.
Its pid and log live in ``var/``; ``make stop-cognito`` ends it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.settings import DEFAULT_LOCAL_PORT, shown_url

# the service is on this machine: never through HTTP_PROXY / HTTPS_PROXY, which urllib would otherwise use for
# 127.0.0.1 too (unless NO_PROXY names it); the proxy cannot reach our loopback, so the service looked down
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _health(endpoint_url: str, timeout: float) -> dict | None:
    """The service's health answer, or None when nothing (or another program) answers."""
    try:
        with _DIRECT.open(f"{endpoint_url}/_localcognito/health", timeout=timeout) as resp:
            answer = json.loads(resp.read() or b"{}")    # a JSON answer: our service, not another program
            return answer if resp.status == 200 and isinstance(answer, dict) else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def is_healthy(endpoint_url: str, timeout: float = 1.0) -> bool:
    return _health(endpoint_url, timeout) is not None


def other_checkout(endpoint_url: str, timeout: float = 1.0) -> str | None:
    """The checkout a healthy local service at ``endpoint_url`` runs from, when it is not this one.

    ``ensure_running`` uses whatever service answers on the port; one started from another clone of
    the project runs that clone's code, which may differ from this one's.
    """
    theirs = (_health(endpoint_url, timeout) or {}).get("checkout")
    ours = str(Path(__file__).resolve().parent.parent)
    return theirs if isinstance(theirs, str) and Path(theirs) != Path(ours) else None


def ensure_running(var_dir: Path, port: int = DEFAULT_LOCAL_PORT, wait_seconds: float = 30.0) -> str:
    """Return the endpoint of a healthy local service on ``port``, starting one if none answers."""
    endpoint = f"http://127.0.0.1:{port}"
    if is_healthy(endpoint):
        return endpoint
    var_dir.mkdir(parents=True, exist_ok=True)
    with open(var_dir / "localcognito.log", "ab") as log:   # the child keeps its own copy
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.localcognito", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    (var_dir / "localcognito.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigError(
                f"The local Cognito service exited at start (code {proc.returncode}); see "
                f"{var_dir / 'localcognito.log'}. Is port {port} taken? Set LOCAL_COGNITO_PORT to another port.")
        if is_healthy(endpoint):
            return endpoint
        time.sleep(0.2)
    raise ConfigError(f"The local Cognito service did not answer on {shown_url(endpoint)} within {wait_seconds:.0f} s; "
                      f"see {var_dir / 'localcognito.log'}.")


def stop(var_dir: Path, port: int = DEFAULT_LOCAL_PORT, wait_seconds: float = 10.0) -> list[int]:
    """Stop this checkout's local service: the one ``ensure_running`` recorded in ``var_dir`` and the one
    answering on ``port`` (found even when the runs directory, and so ``var_dir``, changed since it
    was started). Return the pids stopped, after they have exited (or ``wait_seconds`` passed).

    A recorded pid is signalled only while it still runs ``pipeline.localcognito``: a pid file outliving
    its service must not stop whatever process the system gave that pid to since. A service of another
    checkout is left to that checkout.
    """
    pids: set[int] = set()
    pid_file = var_dir / "localcognito.pid"
    try:
        recorded = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        recorded = None
    if recorded is not None and _is_local_service(recorded):
        pids.add(recorded)
    answer = _health(f"http://127.0.0.1:{port}", 1.0) or {}
    ours = str(Path(__file__).resolve().parent.parent)
    if isinstance(answer.get("pid"), int) and answer.get("checkout") == ours and _is_local_service(answer["pid"]):
        pids.add(answer["pid"])
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait_seconds
    while any(_is_local_service(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return sorted(pids)


def _is_local_service(pid: int) -> bool:
    """Whether process ``pid`` is alive and runs ``python -m pipeline.localcognito`` (read from /proc;
    where there is no /proc, whether it is alive at all)."""
    if not Path("/proc/self").exists():
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and b"pipeline.localcognito" in cmdline
