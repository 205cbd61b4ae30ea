"""What a teacher is (chat messages in, one reply or a reason out) and the registry users pick it from."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence

from easynlp_bp.registry import Registry

Messages = list[dict]  # OpenAI chat format: [{"role": "system"|"user", "content": str}, ...]
OnReply = Callable[[int, "TeacherReply"], None]


@dataclass
class TeacherReply:
    """The text of a reply, or ``error`` saying why there is none (after ``attempts`` tries)."""

    text: Optional[str] = None
    error: Optional[str] = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.text is not None


class Teacher(Protocol):
    """An LLM that answers chat messages. ``identity`` names the model and its sampling settings; it is
    part of every cache key, so a different teacher is asked again instead of reusing replies."""

    identity: str

    def complete(self, requests: Sequence[Messages], on_reply: Optional[OnReply] = None,
                 progress_desc: str = "teacher") -> list[TeacherReply]:
        """One reply per request, in order; ``on_reply(i, reply)`` is called as each one finishes."""
        ...


TEACHERS: Registry = Registry("teacher")
