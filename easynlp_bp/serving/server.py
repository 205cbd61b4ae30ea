"""Run the API with uvicorn: in the foreground (``--mode=serve``, ``easynlp-serve``) or in a background thread.

``BackgroundServer`` binds its socket before it starts (so ``port=0`` gets a free port that is known at
once) and is what tests, benchmarks and notebooks use.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from easynlp_bp.serving.config import ServeConfig

logger = logging.getLogger(__name__)


def _import_uvicorn():
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as err:
        raise ImportError("The server needs FastAPI and uvicorn: pip install -e .[serving]") from err
    return uvicorn


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:  # not a model problem: keep it out of the CLI's hub hint for OSErrors
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port} ({err.strerror}); stop the server that uses it or pass "
                         "another port, e.g. --user_defined_parameters='port=8001' (port=0: any free port).") from err
    sock.listen(2048)
    return sock


def header_timeout_protocol(header_timeout_s: float):
    """uvicorn's h11 protocol that closes a connection whose request head is not complete ``header_timeout_s``
    after the connection opened or the last response ended (slowloris). uvicorn itself only times out idle
    keep-alive connections, and any received byte stops that timer; bodies are timed by the RequestGuard.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutH11Protocol(H11Protocol):
        _head_timer = None

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(header_timeout_s, self._head_timed_out)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            if self.conn.their_state in (h11.IDLE, h11.DONE) and not self.transport.is_closing():
                waiting = self.cycle is None or self.cycle.response_complete
                if waiting:  # no request in progress: the head never completed
                    self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

    return HeaderTimeoutH11Protocol


def build_server(predictor, config: ServeConfig, pipeline: Any = None):
    """(uvicorn.Server, bound socket) for ``predictor`` under ``config``."""
    uvicorn = _import_uvicorn()
    from easynlp_bp.serving.api import create_app

    from easynlp_bp.serving.routes import served_model_dir

    app = create_app(predictor, config, pipeline)
    sock = _bind(config.host, config.port)
    quantize = getattr(getattr(predictor, "params", None), "quantize", "none")
    logger.info("Model %s on %s%s; API key %s.", served_model_dir(predictor), getattr(predictor, "device", "cpu"),
                f" (quantize={quantize})" if quantize != "none" else "",
                "required (clients send 'Authorization: Bearer KEY')" if app.state.serving.api_key_required
                else "not required")
    server = uvicorn.Server(uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
        http=header_timeout_protocol(config.header_timeout_s)))
    return server, sock


def run_server(predictor, config: ServeConfig, pipeline: Any = None) -> dict:
    """Serve until interrupted (Ctrl-C); returns where it served."""
    server, sock = build_server(predictor, config, pipeline)
    host, port = sock.getsockname()[:2]
    logger.info("Serving BeautifulPrompt on http://%s:%d (demo at /, API schema at /docs).", host, port)
    server.run(sockets=[sock])
    return {"served": f"http://{host}:{port}"}


class BackgroundServer:
    """The API on a background thread, for tests, benchmarks and notebooks.

    Example:
        >>> with BackgroundServer(predictor, ServeConfig(port=0)) as server:
        ...     httpx.post(server.url + "/v1/beautify", json={"prompts": ["1 girl"]}).json()
    """

    def __init__(self, predictor, config: ServeConfig, pipeline: Any = None, start_timeout_s: float = 30.0):
        self.server, self._socket = build_server(predictor, config, pipeline)
        host, port = self._socket.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._start_timeout_s = start_timeout_s

    @property
    def app(self):
        return self.server.config.app

    def __enter__(self) -> "BackgroundServer":
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"The server at {self.url} did not start.")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
