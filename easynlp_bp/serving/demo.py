"""The web demo: one static page served at ``/`` by the API (examples, text box, options, a progress indicator,
prompts with a copy button and a CLIP token count each, images, a note when the input is not English).

A plain page rather than Gradio keeps the demo on the same server, limits and API key as the API, with
no extra dependency; the page only calls ``/health``, ``/v1/beautify``, ``/v1/clip_tokens`` and ``/v1/images``.
"""
from __future__ import annotations

from importlib import resources


def demo_page() -> str:
    """The demo's HTML (``easynlp_bp/serving/static/demo.html``)."""
    return resources.files("easynlp_bp.serving").joinpath("static/demo.html").read_text(encoding="utf-8")
