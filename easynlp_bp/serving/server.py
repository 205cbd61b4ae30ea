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
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def build_server(predictor, config: ServeConfig, pipeline: Any = None):
    """(uvicorn.Server, bound socket) for ``predictor`` under ``config``."""
    uvicorn = _import_uvicorn()
    from easynlp_bp.serving.api import create_app

    app = create_app(predictor, config, pipeline)
    sock = _bind(config.host, config.port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5))
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
