"""Hostile input for ``beautiful_prompt`` predict (CLI and Python API) on a tiny random BLOOM.

Pins: a seeded prompt's output is a function of (seed, prompt, settings) only; one long prompt does not
starve its batch; bad outputs and options fail before any generation; bad rows are rejected one by one.
"""
import json

import pytest

from easynlp_bp import get_application_predictor
from easynlp_bp.cli import main
from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

PROMPTS = ["a cat", "an old castle on a hill at dusk", "1 girl", "a red car", "portrait of a wizard", "a dog"]


def _predictor(model_dir, **params):
    return BeautifulPromptPredictor(str(model_dir), PredictorParams(max_new_tokens=12, **params))


@pytest.mark.parametrize("top_k", [50, 0])  # 50: the fast sampler; 0: HF generate, one sequence at a time
def test_seeded_output_depends_on_seed_and_prompt_only(tiny_model_dir, top_k):
    predictor = _predictor(tiny_model_dir, seed=7, num_return_sequences=3, top_k=top_k, batch_size=4)
    together = predictor.predict(PROMPTS)
    alone = [predictor.predict([p])[0] for p in PROMPTS[:3]]
    one_sequence = predictor.predict(PROMPTS[:3], overrides={"num_return_sequences": 1})
    reordered = predictor.predict(list(reversed(PROMPTS)))[::-1]
    assert alone == together[:3]
    assert [o[0] for o in one_sequence] == [o[0] for o in together[:3]]
    assert reordered == together
    assert predictor.predict(PROMPTS[:1], overrides={"seed": 8}) != together[:1]  # the seed does matter
    assert len({tuple(o) for o in together}) == len(PROMPTS)  # and sampling is not degenerate


def test_python_api_and_predict_agree_on_a_seeded_prompt(tiny_model_dir):
    api = get_application_predictor("beautiful_prompt", str(tiny_model_dir),
                                    "seed=3 num_return_sequences=2 max_new_tokens=12")
    rows = api.run([{"raw_prompt": "a dog"}, {"raw_prompt": "a cat"}])
    assert rows[1]["beams"] == api.predict(["a cat"])[0]


def test_one_long_prompt_does_not_starve_its_batch(tiny_model_dir):
    predictor = BeautifulPromptPredictor(str(tiny_model_dir), PredictorParams(decoding="greedy", max_length=80, guard=False))
    predictor.model.generation_config.min_new_tokens = None
    short = "a cat"
    alone = predictor.predict([short])[0][0]
    n_alone = len(predictor.tokenizer(alone).input_ids)
    assert n_alone > 5  # the precondition: the short prompt alone gets many tokens
    long = ", ".join(["castle"] * 60)  # close to max_length: at most a few new tokens for it
    with_long = predictor.predict([short, long])
    assert with_long[0][0] == alone
    long_ids = predictor.tokenizer(with_long[1][0]).input_ids
    assert len(long_ids) <= max(1, 80 - len(predictor.tokenizer(long).input_ids) - 20)  # within its own budget


def test_run_rejects_bad_rows_one_by_one(tiny_model_dir):
    predictor = _predictor(tiny_model_dir, num_return_sequences=1, seed=1, max_input_chars=50)
    rows = [{"raw_prompt": "a cat", "id": 1}, {"raw_prompt": "  ", "id": 2}, {"raw_prompt": "x" * 51, "id": 3},
            {"id": 4}, {"raw_prompt": "a dog", "id": 5}]
    out = predictor.run(rows)
    assert [r["id"] for r in out] == [1, 2, 3, 4, 5]
    assert [r["predictions"] is None for r in out] == [False, True, True, True, False]
    assert out[1]["reject_reason"] == "field 'raw_prompt' is empty, invisible or not text: '  '"
    assert "51 characters, more than max_input_chars=50" in out[2]["reject_reason"]
    assert out[4]["beams"] == predictor.predict(["a dog"])[0]


def _cli(tmp_path, model_dir, *extra):
    table = tmp_path / "in.tsv"
    if not table.exists():
        table.write_bytes(b"\xef\xbb\xbfa cat\r\nan owl\r\n")
    return main(["--app_name=beautiful_prompt", "--mode=predict", f"--tables={table}",
                 "--input_schema=raw_prompt:str:1", f"--checkpoint_dir={model_dir}", *extra])


def test_cli_reads_bom_crlf_tables(tmp_path, tiny_model_dir):
    out = tmp_path / "out.jsonl"
    assert _cli(tmp_path, tiny_model_dir, f"--outputs={out}", "--append_cols=raw_prompt",
                "--user_defined_parameters=seed=1 num_return_sequences=2 max_new_tokens=6") == 0
    assert [json.loads(line)["raw_prompt"] for line in out.read_text().splitlines()] == ["a cat", "an owl"]


@pytest.mark.parametrize("outputs,message", [
    ("{tmp}", "is a directory; give a file path"),
    ("/proc/predictions.tsv", "is not writable"),
    ("{tmp}/in.tsv/out.tsv", "is not a directory"),
])
def test_cli_checks_outputs_before_loading_or_generating(tmp_path, capsys, monkeypatch, outputs, message):
    def fail(*args, **kwargs):
        raise AssertionError("generation started before the outputs were checked")

    monkeypatch.setattr(BeautifulPromptPredictor, "__init__", fail)
    assert _cli(tmp_path, tmp_path / "no_model", f"--outputs={outputs.format(tmp=tmp_path)}") == 2
    assert message in capsys.readouterr().err


def test_cli_caps_num_return_sequences(tmp_path, capsys):
    assert _cli(tmp_path, tmp_path / "no_model", "--user_defined_parameters=num_return_sequences=10000") == 2
    assert "num_return_sequences=10000 must be at most 16; ask for fewer" in capsys.readouterr().err


def test_server_seeded_output_is_per_prompt(tiny_model_dir):
    httpx = pytest.importorskip("httpx", reason="pip install -e .[serving]")
    pytest.importorskip("fastapi", reason="pip install -e .[serving]")
    from easynlp_bp.serving.config import ServeConfig
    from easynlp_bp.serving.server import BackgroundServer

    predictor = _predictor(tiny_model_dir, device="cpu")
    with BackgroundServer(predictor, ServeConfig(port=0, max_batch_size=8, max_wait_ms=5)) as server:
        with httpx.Client(base_url=server.url, timeout=120, trust_env=False) as client:
            def beautify(prompts, n):
                response = client.post("/v1/beautify", json={"prompts": prompts, "seed": 11, "num_return_sequences": n})
                assert response.status_code == 200, response.text
                return [r["prompts"] for r in response.json()["results"]]

            pair = beautify(["a dog", "a castle"], 3)
            alone = beautify(["a castle"], 1)
    assert alone[0][0] == pair[1][0]
    assert pair == predictor.predict(["a dog", "a castle"], overrides={"seed": 11, "num_return_sequences": 3})
