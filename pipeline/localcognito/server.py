"""Running the service: ``LocalCognito`` (a threaded server inside the caller's process, for tests
and the CLI) and ``serve`` (blocking, for ``python -m pipeline.localcognito``)."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import BaseWSGIServer, make_server

from pipeline.localcognito.app import LocalCognitoApp, Service
from pipeline.localcognito.config import ServiceConfig


class _QuietHandler(MotoRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _make_server(host: str, port: int, service: Service, quiet: bool = True) -> BaseWSGIServer:
    return make_server(host, port, LocalCognitoApp(service), threaded=True,
                       request_handler=_QuietHandler if quiet else MotoRequestHandler)


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

    @property
    def config(self) -> ServiceConfig:
        return self.service.config

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalCognito is not started")
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> LocalCognito:
        self._server = _make_server(self.host, self.port, self.service)
        self._thread = threading.Thread(target=self._server.serve_forever, name="localcognito",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

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
    server = _make_server(host, port, Service(config), quiet)
    print(f"http://{host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
