"""Online serving: HTTP API with dynamic batching (FastAPI + uvicorn), the web demo, diffusers integration.

The web stack is optional (``pip install -e .[serving]``); importing this package needs only the standard library.
"""
