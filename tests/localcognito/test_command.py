"""``python -m pipeline.localcognito``: prints its endpoint on one line, then serves."""

from __future__ import annotations

import json
import os
import signal
import socket
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


def test_stopping_the_in_process_service_leaves_no_error_in_its_thread(monkeypatch):
    """``LocalCognito.stop`` while the server thread is between building its socket lists and
    ``select()``: sockets closed from another thread there made ``select`` fail with EBADF, and the
    traceback reached the terminal (seen once in the migrate benchmark). The delay before each
    ``select`` widens that window to most of the thread's time."""
    import select
    import threading
    import time

    from pipeline.localcognito import LocalCognito

    real_select = select.select

    def slow_select(r, w, e, timeout=None):
        time.sleep(0.02)
        return real_select(r, w, e, 0)

    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    monkeypatch.setattr(select, "select", slow_select)
    for _ in range(5):
        svc = LocalCognito(port=0).start()
        with urllib.request.urlopen(f"{svc.endpoint_url}/_localcognito/health", timeout=10) as resp:
            assert resp.status == 200
        thread = svc._thread
        svc.stop()
        assert thread is not None and not thread.is_alive()
    assert errors == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stop_finds_the_service_on_its_port_when_the_runs_directory_changed(tmp_path):
    from pipeline import localservice

    port = _free_port()
    endpoint = localservice.ensure_running(tmp_path / "started-under" / "var", port=port)
    pid = int((tmp_path / "started-under" / "var" / "localcognito.pid").read_text())
    stray = subprocess.Popen(["sleep", "30"])          # a pid file naming a process that is not the service
    try:
        elsewhere = tmp_path / "now" / "var"
        elsewhere.mkdir(parents=True)
        (elsewhere / "localcognito.pid").write_text(str(stray.pid))
        assert localservice.stop(elsewhere, port=port) == [pid]
        assert not localservice.is_healthy(endpoint) and stray.poll() is None   # the stray process lives on
        assert not (elsewhere / "localcognito.pid").exists()
        assert localservice.stop(elsewhere, port=port) == []
    finally:
        stray.kill()
        if localservice._is_local_service(pid):
            os.kill(pid, signal.SIGKILL)


def test_the_health_check_does_not_go_through_a_proxy(monkeypatch):
    """HTTP_PROXY (a company proxy) must not carry the check of the service on 127.0.0.1: urllib sent it to the
    proxy, which cannot reach this machine's loopback, so make migrate took a running service for down, waited
    30 s for the one it started and failed (or found the port taken)."""
    import threading

    from pipeline.localcognito import LocalCognito
    from pipeline.localservice import is_healthy

    proxied: list[bytes] = []
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()

        def answer() -> None:   # a proxy that reaches nothing: 502 to every request
            while True:
                try:
                    conn, _ = proxy.accept()
                except OSError:
                    return
                with conn:
                    proxied.append(conn.recv(4096))
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

        threading.Thread(target=answer, daemon=True).start()
        url = f"http://127.0.0.1:{proxy.getsockname()[1]}"
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(name, url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        with LocalCognito(port=0) as svc:
            assert is_healthy(svc.endpoint_url)
    assert proxied == []


def test_the_service_serves_with_an_aws_profile_that_names_no_profile_here(tmp_path):
    """A shell or a CI job set up for real AWS exports AWS_PROFILE; where that profile is not in this
    machine's config, moto's region lookup raised ProfileNotFound on every call, and the service answered
    each with a 500, which the pipeline took for an unavailable Cognito (8 retries, "rerun later")."""
    from pipeline.cognito import isolated_session

    env = {**os.environ, "AWS_PROFILE": "prod-admin-not-here", "AWS_CONFIG_FILE": str(tmp_path / "none")}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.localcognito", "--host", "127.0.0.1", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        endpoint = proc.stdout.readline().strip()
        assert endpoint.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else endpoint
        idp = isolated_session("eu-west-1").client("cognito-idp", endpoint_url=endpoint)
        pool = idp.create_user_pool(PoolName="profile-check")["UserPool"]["Id"]
        assert [p["Id"] for p in idp.list_user_pools(MaxResults=10)["UserPools"]] == [pool]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
