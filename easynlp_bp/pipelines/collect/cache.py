"""Append-only JSONL cache of teacher replies keyed by a hash of what was asked, so reruns resume.

Each finished reply is one line written, flushed and fsynced at once; a run killed mid-write leaves at
most one torn last line, which the next run ignores (and logs). Nothing is ever rewritten in place.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Optional

logger = logging.getLogger(__name__)


def cache_key(*parts: str) -> str:
    """SHA-256 of the parts (step, teacher identity, instruction, input), unambiguous across boundaries."""
    digest = hashlib.sha256()
    for part in parts:
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()


class ReplyCache:
    """Thread-safe ``key -> reply text`` store backed by an append-only JSONL file.

    Example:
        >>> cache = ReplyCache("out/teacher_cache.jsonl")
        >>> key = cache_key("summarize", "gpt-x", "a castle, 8k")
        >>> cache.get(key) is None or cache.get(key)
        True
    """

    def __init__(self, path: Optional[str]):
        self.path = Path(path) if path else None
        self._replies: dict[str, str] = {}
        self._lock = threading.Lock()
        self.torn_lines = 0
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    record = json.loads(raw.decode("utf-8"))
                    self._replies[record["key"]] = record["reply"]
                except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
                    # Only an interrupted write can produce this; the reply is simply asked again.
                    self.torn_lines += 1
                    logger.warning("%s line %d is incomplete (an interrupted write); ignoring it.", self.path, number)
        if self.torn_lines:
            self._truncate_torn_tail()
        logger.info("Teacher cache %s: %d replies loaded.", self.path, len(self._replies))

    def _truncate_torn_tail(self) -> None:
        """End the file with a newline so that the next append starts a line of its own."""
        assert self.path is not None
        with open(self.path, "rb+") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")

    def __len__(self) -> int:
        return len(self._replies)

    def __contains__(self, key: str) -> bool:
        return key in self._replies

    def get(self, key: str) -> Optional[str]:
        return self._replies.get(key)

    def put(self, key: str, reply: str, **meta: object) -> None:
        """Store ``reply`` under ``key`` and append it durably (``meta`` is kept in the line for readers)."""
        line = json.dumps({"key": key, "reply": reply, **meta}, ensure_ascii=False) + "\n"
        with self._lock:
            if key in self._replies:
                return
            self._replies[key] = reply
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
