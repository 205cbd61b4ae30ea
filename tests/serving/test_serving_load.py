"""Smoke run of benchmarks/serving_load.py on tiny sizes: zero 5xx, every well-formed request answered."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("httpx", reason="pip install -e .[serving]")
pytest.importorskip("fastapi", reason="pip install -e .[serving]")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serving_load.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("serving_load", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_load_test_smoke(tiny_model_dir):
    bench = load_benchmark()
    result = bench.run_load_test(str(tiny_model_dir), n_clients=4, n_requests=16, malformed_every=4,
                                 max_batch_size=4, max_wait_ms=20, max_new_tokens=8)
    for name in ("dynamic", "batch_size_1"):
        run = result[name]
        assert run["requests"] == 16 and run["malformed"] == 4 and run["well_formed"] == 12
        assert run["server_errors_5xx"] == 0
        assert run["well_formed_answered"] == 12 and run["malformed_answered_4xx"] == 4
        assert run["latency_ms_p50"] <= run["latency_ms_p99"]
    assert result["batch_size_1"]["batch_size_histogram"] == {"1": 13}  # 12 requests + the warm-up
    assert result["dynamic"]["mean_batch_size"] > 1
    assert result["throughput_ratio"] > 0 and result["checks_passed"] is True
