"""ServeConfig: where the server listens, how it batches, and the limits it enforces on each request.

``ServeFields`` holds the user-facing keys (also ``user_defined_parameters`` of ``--mode=serve``);
``ServeConfig`` adds validation and the input length limit that the predictor already declares.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field, fields
from typing import Optional

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeFields:
    """Keys of ``--mode=serve`` (``--user_defined_parameters='port=8000 max_batch_size=16 ...'``)."""

    host: str = field(default="127.0.0.1", metadata={"help": "Address to bind (127.0.0.1: this machine only)."})
    port: int = field(default=8000, metadata={"help": "TCP port (0: any free port)."})
    max_batch_size: int = field(default=16, metadata={"help": "Most raw prompts in one generate call."})
    max_wait_ms: float = field(default=10.0, metadata={"help": "How long a batch waits for more requests."})
    max_prompts_per_request: int = field(default=16, metadata={"help": "Most raw prompts in one request."})
    max_queue_size: int = field(default=64, metadata={"help": "Most waiting requests; more get HTTP 429."})
    request_timeout_s: float = field(default=60.0, metadata={"help": "A request not answered in time gets 504."})
    max_new_tokens_limit: int = field(default=256, metadata={"help": "Largest max_new_tokens a request may ask."})
    api_key: Optional[str] = field(default=None, metadata={"help": "If set, clients send 'Authorization: Bearer KEY'."})
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
        for name in ("max_batch_size", "max_prompts_per_request", "max_queue_size", "max_new_tokens_limit",
                     "max_input_chars", "image_steps", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1.")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port={self.port} must lie in [0, 65535] (0 picks a free port).")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms={self.max_wait_ms} must not be negative (0: no waiting).")
        if self.request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s={self.request_timeout_s} must be positive.")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key is empty; leave it unset for no key, or give a secret string.")
        if not _is_loopback(self.host) and self.api_key is None:
            logger.warning("Serving on %s (reachable from other machines) without api_key.", self.host)

    @classmethod
    def from_params(cls, params) -> "ServeConfig":
        """Build from an app's params object carrying the :class:`ServeFields` keys and ``max_input_chars``."""
        names = [f.name for f in fields(cls)]
        return cls(**{name: getattr(params, name) for name in names if hasattr(params, name)})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
