"""ServeConfig: where the server listens, how it batches, and the limits it enforces on each request.

``ServeFields`` holds the user-facing keys (also ``user_defined_parameters`` of ``--mode=serve``);
``ServeConfig`` adds validation and the input length limit that the predictor already declares.
"""
from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar, Optional

from easynlp_bp.finite_numbers import require_finite

logger = logging.getLogger(__name__)

API_KEY_ENV = "EASYNLP_API_KEY"
SECRET_KEYS = ("api_key",)


@dataclass(frozen=True)
class ServeFields:
    """Keys of ``--mode=serve`` (``--user_defined_parameters='port=8000 max_batch_size=16 ...'``)."""

    option_modes: ClassVar[tuple[str, ...]] = ("serve",)

    host: str = field(default="127.0.0.1", metadata={"help": "Address to bind (127.0.0.1: this machine only)."})
    port: int = field(default=8000, metadata={"help": "TCP port (0: any free port)."})
    max_batch_size: int = field(default=16, metadata={"help": "Most raw prompts in one generate call."})
    max_wait_ms: float = field(default=10.0, metadata={"help": "How long a batch waits for more requests."})
    max_prompts_per_request: int = field(default=16, metadata={"help": "Most raw prompts in one request."})
    max_queue_size: int = field(default=64, metadata={"help": "Most waiting requests; more get HTTP 429."})
    request_timeout_s: float = field(default=60.0, metadata={"help": "A request not answered in time gets 504."})
    max_new_tokens_limit: int = field(default=256, metadata={"help": "Largest max_new_tokens a request may ask."})
    api_key: Optional[str] = field(default=None, repr=False, metadata={
        "help": f"If set, clients send 'Authorization: Bearer KEY'. Better: the env var {API_KEY_ENV} or api_key_file "
                "(a command line is visible in `ps`)."})
    api_key_file: Optional[str] = field(default=None, metadata={"help": "File whose first line is the API key."})
    body_timeout_s: float = field(default=30.0, metadata={"help": "A request body not received in time gets 408."})
    header_timeout_s: float = field(default=10.0, metadata={
        "help": "A connection that sends no complete request head in time is closed (slowloris)."})
    diffusers_pipeline: Optional[str] = field(
        default=None, metadata={"help": "DiffusionPipeline dir or hub id: the demo then shows images."}
    )
    image_steps: int = field(default=20, metadata={"help": "Denoising steps for demo images."})
    image_size: int = field(default=512, metadata={"help": "Height and width of demo images."})


@dataclass(frozen=True)
class ServeConfig(ServeFields):
    """Validated server settings.

    Example:
        >>> ServeConfig(port=0, max_batch_size=8).max_wait_ms
        10.0
    """

    max_input_chars: int = field(default=2000, metadata={"help": "Longer raw prompts get HTTP 413."})

    def __post_init__(self) -> None:
        require_finite(self)  # NaN passes every < / >= check below
        for name in ("max_batch_size", "max_prompts_per_request", "max_queue_size", "max_new_tokens_limit",
                     "max_input_chars", "image_steps", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1.")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port={self.port} must lie in [0, 65535] (0 picks a free port).")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms={self.max_wait_ms} must not be negative (0: no waiting).")
        for name in ("request_timeout_s", "body_timeout_s", "header_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value} must be a positive number of seconds.")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key is empty; leave it unset for no key, or give a secret string.")
        keyless = self.api_key is None and self.api_key_file is None and os.environ.get(API_KEY_ENV) is None
        if not _is_loopback(self.host) and keyless:
            logger.warning("Serving on %s (reachable from other machines) without api_key.", self.host)

    def resolved_api_key(self) -> Optional[str]:
        """The key the server checks: ``api_key``, else ``api_key_file``'s first line, else ``EASYNLP_API_KEY``
        (read when the server is built, not here, so that building a config reads no file)."""
        return resolve_api_key(self.api_key, self.api_key_file)

    @property
    def max_body_bytes(self) -> int:
        """Largest request body: the longest allowed request (UTF-8, 4 bytes a character) plus room for options."""
        return self.max_prompts_per_request * self.max_input_chars * 4 + 65536

    @classmethod
    def from_params(cls, params) -> "ServeConfig":
        """Build from an app's params object carrying the :class:`ServeFields` keys and ``max_input_chars``."""
        names = [f.name for f in fields(cls)]
        return cls(**{name: getattr(params, name) for name in names if hasattr(params, name)})


def resolve_api_key(api_key: Optional[str], api_key_file: Optional[str]) -> Optional[str]:
    """The key from ``api_key``, else ``api_key_file``'s first line, else the env var ``EASYNLP_API_KEY``."""
    source = "api_key"
    if api_key is None and api_key_file:
        path = Path(api_key_file)
        if not path.is_file():
            raise FileNotFoundError(f"api_key_file={api_key_file} does not exist; write the key into it, one line.")
        lines = path.read_text(encoding="utf-8").splitlines()
        api_key, source = (lines[0] if lines else ""), f"api_key_file={api_key_file}"
    elif api_key is None and os.environ.get(API_KEY_ENV) is not None:
        api_key, source = os.environ[API_KEY_ENV], f"the env var {API_KEY_ENV}"
    if api_key is not None and not api_key.strip():
        raise ValueError(f"The API key from {source} is empty; leave it unset for no key, or give a secret string.")
    return None if api_key is None else api_key.strip()


def redact_secrets(values: dict) -> dict:
    """``values`` with every secret (``api_key``) replaced by ``"<redacted>"``, for ``run_config.json`` and logs;
    also inside strings such as the raw ``--user_defined_parameters='... api_key=KEY'``."""
    secret_in_text = re.compile(rf"\b({'|'.join(SECRET_KEYS)})=(\S+)")
    return {k: "<redacted>" if k in SECRET_KEYS and v is not None
            else secret_in_text.sub(r"\1=<redacted>", v) if isinstance(v, str) else v for k, v in values.items()}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
