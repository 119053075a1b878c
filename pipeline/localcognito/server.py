"""Running the service: ``LocalCognito`` (a threaded server inside the caller's process, for tests
and the CLI) and ``serve`` (blocking, for ``python -m pipeline.localcognito``)."""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import Any

from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server

from pipeline.localcognito.app import LocalCognitoApp, Service
from pipeline.localcognito.config import ServiceConfig

_THREADS = 8
# A running import job keeps one thread busy in Python; a request thread needs the GIL several times per
# call and waited up to CPython's default 5 ms each time. With 1 ms, a chunk's harvest (log reads,
# AdminGetUser) finishes while the next job runs instead of queueing behind it (migrate benchmark:
# the load stage's tail after the last job went from ~6 s to ~3 s; import speed unchanged).
_SWITCH_INTERVAL = 0.001


def _logged(app: Any) -> Any:
    """The app, printing one line per request (``--verbose``)."""
    def logging_app(environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: Any, exc_info: Any = None) -> Any:
            target = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
            print(f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')} {target} {status}", flush=True)
            return start_response(status, headers, exc_info)
        return app(environ, start)
    return logging_app


def _make_server(host: str, port: int, service: Service, quiet: bool = True) -> BaseWSGIServer:
    """A waitress server: it keeps a client's connection open between calls (botocore pools them),
    where werkzeug's development server closed it after every response, and it serves requests from a
    pool of threads rather than a thread per connection."""
    app = LocalCognitoApp(service)
    return create_server(app if quiet else _logged(app), host=host, port=port, threads=_THREADS,
                         ident="local-cognito")


def _shutdown(server: BaseWSGIServer, loop: threading.Thread | None = None) -> None:
    """Stop serving: the request threads, then the listening socket and every open connection, which
    makes ``run()`` return. With ``loop`` (the thread in ``run()``), that thread closes them itself:
    sockets closed from here while it sat in ``select()`` made it fail with EBADF now and then, and
    the traceback reached the caller's terminal."""
    server.task_dispatcher.shutdown()
    if loop is not None and loop.is_alive():
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        loop.join(timeout=5)
        if not loop.is_alive():
            return
    wasyncore.close_all(server._map)


class LocalCognito:
    """The local Cognito import service on ``host:port`` (0 = a free port), in a background thread.

    moto's backends are process-wide, so two instances in one process share pools and users; each has
    its own jobs, settings and faults.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, config: ServiceConfig | None = None) -> None:
        self.host, self.port = host, port
        self.service = Service(config)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._interval: float | None = None     # the switch interval before start

    @property
    def config(self) -> ServiceConfig:
        return self.service.config

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalCognito is not started")
        return f"http://{self.host}:{self._server.effective_port}"

    def start(self) -> LocalCognito:
        """Serve in a background thread. The process's GIL switch interval is set to 1 ms until ``stop``."""
        self._interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._interval, _SWITCH_INTERVAL))
        self._server = _make_server(self.host, self.port, self.service)
        self._thread = threading.Thread(target=self._server.run, name="localcognito",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            _shutdown(self._server, self._thread)
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._interval is not None:
            sys.setswitchinterval(self._interval)
            self._interval = None

    def configure(self, **values: Any) -> None:
        """Change any of the settings and fault switches (see ``config``); unknown keys raise ValueError."""
        self.service.configure(**values)

    def reset_faults(self) -> None:
        self.service.faults.reset()

    def __enter__(self) -> LocalCognito:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve(host: str = "127.0.0.1", port: int = 9229, config: ServiceConfig | None = None,
          quiet: bool = True) -> None:
    """Serve until interrupted; prints the endpoint URL on one line first (and requests unless quiet)."""
    sys.setswitchinterval(_SWITCH_INTERVAL)
    server = _make_server(host, port, Service(config), quiet)
    print(f"http://{host}:{server.effective_port}", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        _shutdown(server)
