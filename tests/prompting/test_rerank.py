"""Several candidates, best first: ``rerank`` orders each input's outputs by a score it reports."""
from __future__ import annotations

import pytest

from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

CANDIDATES = ["an ancient bridge at dusk, oil painting", "a red fox in the snow, golden hour, 8k",
              "a fox, snow, art"]


def _predictor(tiny_bloom, tiny_tokenizer, **params):
    settings = {"num_return_sequences": 3, "guard": False, "seed": 1, **params}
    predictor = BeautifulPromptPredictor("unused", PredictorParams(**settings), model=tiny_bloom,
                                         tokenizer=tiny_tokenizer)
    predictor._generate_texts = lambda raws, p, keep, attempt, progress=False: [list(CANDIDATES) for _ in raws]
    return predictor


def test_consistency_rerank_puts_the_faithful_candidate_first(tiny_bloom, tiny_tokenizer):
    predictor = _predictor(tiny_bloom, tiny_tokenizer)
    [plain] = predictor.predict_results(["a red fox in the snow"])
    assert plain.outputs == CANDIDATES and plain.scores == []
    [ranked] = predictor.predict_results(["a red fox in the snow"], {"rerank": "consistency"})
    assert ranked.outputs[0] == CANDIDATES[1] and ranked.outputs[-1] == CANDIDATES[0]
    assert sorted(ranked.outputs) == sorted(CANDIDATES) and ranked.statuses == ["unchecked"] * 3
    assert ranked.scores == sorted(ranked.scores, reverse=True) and ranked.scores[0] > ranked.scores[-1] + 0.2
    [row] = predictor.run([{"raw_prompt": "a red fox in the snow"}])
    assert "scores" not in row  # the predictor's own params: no rerank, no scores column


def test_rerank_scores_are_the_reward_of_each_output(tiny_bloom, tiny_tokenizer):
    """The reported score is the scorer's value for that very output (not a position or a copy)."""
    predictor = _predictor(tiny_bloom, tiny_tokenizer, rerank="consistency")
    [ranked] = predictor.predict_results(["a red fox in the snow"])
    scorer = predictor.reranker_for(predictor.params)
    direct = scorer(["a red fox in the snow"] * 3, ranked.outputs).tolist()
    assert ranked.scores == pytest.approx(direct, abs=1e-4)


def test_reward_rerank_needs_the_two_reward_models():
    with pytest.raises(ValueError, match="rerank=reward needs rerank_reward_models"):
        PredictorParams(rerank="reward")
