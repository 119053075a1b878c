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
from pipeline.settings import DEFAULT_LOCAL_PORT


def _health(endpoint_url: str, timeout: float) -> dict | None:
    """The service's health answer, or None when nothing (or another program) answers."""
    try:
        with urllib.request.urlopen(f"{endpoint_url}/_localcognito/health", timeout=timeout) as resp:
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
    raise ConfigError(f"The local Cognito service did not answer on {endpoint} within {wait_seconds:.0f} s; "
                      f"see {var_dir / 'localcognito.log'}.")


def stop(var_dir: Path) -> bool:
    """Stop the service started by ``ensure_running``; False when none was recorded."""
    pid_file = var_dir / "localcognito.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
    except (ProcessLookupError, ValueError):
        pass
    pid_file.unlink(missing_ok=True)
    return True
