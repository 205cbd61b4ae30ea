"""Long loops show a tqdm bar with rate and ETA on stderr: forced on by EASYNLP_BP_PROGRESS=1, off when
stderr is not a terminal, never for serving's per-request predict calls."""
from __future__ import annotations

import re

from easynlp_bp.progress import progress_bar
from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

ETA = re.compile(r"\d+/\d+ \[\d\d:\d\d<\d\d:\d\d")  # e.g. "3/3 [00:01<00:00" : elapsed<remaining


def _predictor(tiny_tokenizer, tiny_bloom):
    params = PredictorParams(decoding="greedy", num_return_sequences=1, max_new_tokens=2, batch_size=1)
    return BeautifulPromptPredictor("unused", params, model=tiny_bloom, tokenizer=tiny_tokenizer)


def test_batch_predict_shows_a_bar_with_eta(tiny_tokenizer, tiny_bloom, monkeypatch, capsys):
    monkeypatch.setenv("EASYNLP_BP_PROGRESS", "1")
    rows = _predictor(tiny_tokenizer, tiny_bloom).run([{"raw_prompt": t} for t in ("a cat", "a dog", "a tree")])
    assert len(rows) == 3
    err = capsys.readouterr().err
    assert "predict" in err and "3/3" in err and ETA.search(err), err


def test_serving_style_predict_calls_stay_quiet(tiny_tokenizer, tiny_bloom, monkeypatch, capsys):
    monkeypatch.setenv("EASYNLP_BP_PROGRESS", "1")
    _predictor(tiny_tokenizer, tiny_bloom).predict(["a cat"])
    assert "predict" not in capsys.readouterr().err


def test_bars_are_off_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    monkeypatch.delenv("EASYNLP_BP_PROGRESS", raising=False)
    with progress_bar(5, "PPO", "step") as bar:  # capsys's stderr is not a TTY
        bar.update(5)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("EASYNLP_BP_PROGRESS", "0")
    with progress_bar(5, "PPO", "step", enabled=None) as bar:
        bar.update(5)
    assert capsys.readouterr().err == ""
