"""What every benchmark script does with its result: print it as JSON and, with ``--output``, write it there too."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional


def emit_result(result: dict, output: Optional[str]) -> int:
    """Print ``result`` as indented JSON (stdout), also write it to ``output`` when given; return exit code 0."""
    text = json.dumps(result, indent=2)
    print(text)
    if output:
        Path(output).write_text(text)
    return 0
