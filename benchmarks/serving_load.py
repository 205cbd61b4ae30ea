"""Bounded load test of the HTTP API on loopback: dynamic batching against batch size 1, side by side.

N concurrent clients send a fixed number of requests (every k-th one malformed) to a real uvicorn server
on 127.0.0.1, once with dynamic batching and once with max_batch_size=1. Checks: zero 5xx, every
well-formed request answered 200, every malformed one a 4xx. Reports throughput, p50/p99 latency and the
throughput ratio. Exit code 0 when the checks pass.

    .venv/bin/python benchmarks/serving_load.py --clients 16 --requests 160 --output load.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for benchmarks.random_bloom

MALFORMED = [  # (body, content) pairs that a client might get wrong
    b'{"prompts": ["1 girl"',                      # truncated JSON
    b'{"prompts": 42}',                            # wrong type
    b'{"prompts": "1 girl", "style": "anime"}',    # unknown field
    b'{"prompts": [" "]}',                         # empty prompt
    b'{"prompts": "1 girl", "decoding": "topk"}',  # unknown value
]
RAW_PROMPTS = ["1 girl", "a cat on a sofa", "a castle on a hill", "a red car", "an old man", "a forest at night",
               "a dragon", "a bowl of fruit"]


def build_benchmark_model(directory: Path, hidden_size: int, n_layer: int) -> Path:
    """A random BLOOM (real architecture, project tokenizer) saved to ``directory``: no download needed."""
    from benchmarks.random_bloom import save_random_bloom

    save_random_bloom(directory, hidden_size, n_layer)
    return directory


async def _drive(url: str, n_clients: int, n_requests: int, malformed_every: int, body_options: dict) -> list[dict]:
    """Send ``n_requests`` from ``n_clients`` concurrent clients; one record per request."""
    import httpx

    records: list[dict] = []
    next_index = iter(range(n_requests))

    async def client_loop(client):
        for index in next_index:  # a shared iterator: each request is sent by exactly one client
            malformed = malformed_every > 0 and index % malformed_every == malformed_every - 1
            if malformed:
                content = MALFORMED[index % len(MALFORMED)]
            else:
                content = json.dumps({"prompts": [RAW_PROMPTS[index % len(RAW_PROMPTS)]], **body_options}).encode()
            start = time.perf_counter()
            try:
                response = await client.post("/v1/beautify", content=content,
                                             headers={"content-type": "application/json"})
                status, answered = response.status_code, response.status_code == 200 and bool(
                    response.json()["results"][0]["prompts"])
            except httpx.HTTPError as err:
                status, answered = f"transport error: {type(err).__name__}", False
            records.append({"index": index, "malformed": malformed, "status": status, "answered": answered,
                            "latency_s": time.perf_counter() - start})

    async with httpx.AsyncClient(base_url=url, timeout=600, trust_env=False,
                                 limits=httpx.Limits(max_connections=n_clients)) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(n_clients)))
    return records


def run_pass(predictor, n_clients: int, n_requests: int, malformed_every: int, max_batch_size: int,
             max_wait_ms: float, body_options: dict) -> dict:
    """One server configuration under load: checks and numbers."""
    import httpx

    from easynlp_bp.serving.config import ServeConfig
    from easynlp_bp.serving.server import BackgroundServer

    config = ServeConfig(port=0, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                         max_queue_size=max(64, 2 * n_clients), request_timeout_s=600)
    with BackgroundServer(predictor, config) as server:
        httpx.post(server.url + "/v1/beautify", json={"prompts": ["warm up"], **body_options}, timeout=600,
                   trust_env=False)
        start = time.perf_counter()
        records = asyncio.run(_drive(server.url, n_clients, n_requests, malformed_every, body_options))
        wall_s = time.perf_counter() - start
        metrics = httpx.get(server.url + "/metrics.json", trust_env=False).json()
    good = [r for r in records if not r["malformed"]]
    bad = [r for r in records if r["malformed"]]
    latencies = np.asarray([r["latency_s"] for r in good]) * 1000
    statuses = [r["status"] for r in records]
    return {
        "max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms,
        "requests": len(records), "well_formed": len(good), "malformed": len(bad),
        "server_errors_5xx": sum(1 for s in statuses if not isinstance(s, int) or s >= 500),
        "well_formed_answered": sum(r["answered"] for r in good),
        "malformed_answered_4xx": sum(1 for r in bad if isinstance(r["status"], int) and 400 <= r["status"] < 500),
        "wall_s": wall_s,
        "throughput_rps": len(good) / wall_s,
        "latency_ms_p50": float(np.percentile(latencies, 50)) if len(latencies) else None,
        "latency_ms_p99": float(np.percentile(latencies, 99)) if len(latencies) else None,
        "mean_batch_size": metrics["mean_batch_size"],
        "batch_size_histogram": metrics["batch_size_histogram"],
    }


def passes_checks(result: dict) -> bool:
    return (result["server_errors_5xx"] == 0 and result["well_formed_answered"] == result["well_formed"]
            and result["malformed_answered_4xx"] == result["malformed"])


def run_load_test(model_dir: str, n_clients: int = 16, n_requests: int = 160, malformed_every: int = 8,
                  max_batch_size: int = 16, max_wait_ms: float = 10.0, max_new_tokens: int = 32,
                  num_return_sequences: int = 1) -> dict:
    """Dynamic batching and batch size 1 under the same load; returns both passes and the throughput ratio."""
    from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

    predictor = BeautifulPromptPredictor(model_dir, PredictorParams(
        max_new_tokens=max_new_tokens, num_return_sequences=num_return_sequences))
    # Same-length outputs in both passes so the ratio measures batching, not luck in when EOS comes.
    body = {"max_new_tokens": max_new_tokens}
    dynamic = run_pass(predictor, n_clients, n_requests, malformed_every, max_batch_size, max_wait_ms, body)
    single = run_pass(predictor, n_clients, n_requests, malformed_every, 1, 0.0, body)
    return {
        "clients": n_clients, "model_dir": model_dir, "max_new_tokens": max_new_tokens,
        "num_return_sequences": num_return_sequences, "dynamic": dynamic, "batch_size_1": single,
        "throughput_ratio": dynamic["throughput_rps"] / single["throughput_rps"],
        "checks_passed": passes_checks(dynamic) and passes_checks(single),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", help="Model to serve (default: a random BLOOM built here).")
    parser.add_argument("--hidden_size", type=int, default=512, help="Built model's hidden size.")
    parser.add_argument("--n_layer", type=int, default=4, help="Built model's layers.")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--malformed_every", type=int, default=8, help="Every k-th request is malformed (0: none).")
    parser.add_argument("--max_batch_size", type=int, default=16)
    parser.add_argument("--max_wait_ms", type=float, default=10.0)
    parser.add_argument("--max_new_tokens", type=int, default=32)
    parser.add_argument("--num_return_sequences", type=int, default=1)
    parser.add_argument("--output", help="Write the results as JSON here too.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # loopback only: never reach for a model hub
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = args.model_dir or str(build_benchmark_model(Path(scratch), args.hidden_size, args.n_layer))
        result = run_load_test(model_dir, args.clients, args.requests, args.malformed_every, args.max_batch_size,
                               args.max_wait_ms, args.max_new_tokens, args.num_return_sequences)
    text = json.dumps(result, indent=2)
    sys.stdout.write(text + "\n")
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0 if result["checks_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
