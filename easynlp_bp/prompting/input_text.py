"""A raw prompt as the model should see it: without control and invisible format characters.

Terminal escapes (``\\x1b[31m``), NULs, zero-width spaces and joiners, byte-order marks and bidi controls carry no
meaning for an image prompt, and the model answers them with loops ("ultrararara..."). They are removed (line
breaks and tabs become spaces) before generation and before the faithfulness guard compares, so the answer is
about the visible text. Written with ``unicodedata`` categories: no package covers exactly this.
"""
from __future__ import annotations

import re
import unicodedata

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")  # CSI sequences and two-byte escapes
_SPACES = re.compile(r"[ \t\r\n\v\f\u0085\u2028\u2029]+")


def visible_text(text: str) -> str:
    """``text`` without control (Cc) and format (Cf) characters, whitespace runs as one space, outer spaces cut."""
    spaced = _SPACES.sub(" ", _ANSI_ESCAPE.sub("", text))
    return "".join(c for c in spaced if unicodedata.category(c) not in ("Cc", "Cf")).strip()
