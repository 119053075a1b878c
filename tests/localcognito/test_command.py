"""``python -m pipeline.localcognito``: prints its endpoint on one line, then serves."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request


def test_server_command_prints_endpoint_and_serves():
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.localcognito", "--host", "127.0.0.1",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else line
        with urllib.request.urlopen(f"{line}/_localcognito/health", timeout=10) as resp:
            assert resp.status == 200 and json.loads(resp.read())["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_service_of_another_checkout_is_named(monkeypatch):
    """make migrate reuses whatever local service answers on its port; one started from another clone
    runs that clone's code, so the CLI names it (localservice.other_checkout)."""
    from pipeline.localcognito import LocalCognito, app
    from pipeline.localservice import other_checkout

    with LocalCognito(port=0) as svc:
        assert other_checkout(svc.endpoint_url) is None          # started from this checkout
        monkeypatch.setattr(app, "CHECKOUT", "/srv/another-clone")
        assert other_checkout(svc.endpoint_url) == "/srv/another-clone"
    assert other_checkout("http://127.0.0.1:9") is None          # nothing answers: nothing to say
