"""SFT batches project only the positions that predict a target token, and the loss stays the same."""
import torch

from easynlp_bp.sft.data import IGNORE_INDEX, collate_for_training, collate_left_padded, encode_pair


def _examples(tokenizer):
    pairs = [("a cat", "a cat, 8k, highly detailed"),
             ("two red foxes on the snowy hill at night", "two red foxes on the snowy hill at night, moonlight"),
             ("bond", "bond, cinematic lighting, concept art, trending on artstation, by greg rutkowski")]
    return [encode_pair(raw, target, tokenizer, 192) for raw, target in pairs]


def test_cut_batch_has_the_full_batchs_loss_and_gradients(tiny_bloom, tiny_tokenizer):
    examples = _examples(tiny_tokenizer)
    full = collate_left_padded(examples, tiny_tokenizer.pad_token_id)
    cut = collate_for_training(examples, tiny_tokenizer.pad_token_id)

    width = full["input_ids"].shape[1]
    assert 0 < cut["logits_to_keep"] < width  # the instruction of every row needs no logits
    assert int((cut["labels"] != IGNORE_INDEX).sum()) == int((full["labels"] != IGNORE_INDEX).sum())

    tiny_bloom.zero_grad()
    full_loss = tiny_bloom(**full).loss
    full_loss.backward()
    full_grads = [p.grad.clone() for p in tiny_bloom.parameters()]
    tiny_bloom.zero_grad()
    cut_loss = tiny_bloom(**cut).loss
    cut_loss.backward()
    assert torch.allclose(cut_loss, full_loss, atol=1e-6)
    for full_grad, param in zip(full_grads, tiny_bloom.parameters()):
        assert torch.allclose(param.grad, full_grad, atol=1e-6)


def test_the_first_target_token_of_the_longest_target_is_still_predicted(tiny_bloom, tiny_tokenizer):
    """Keeping one position fewer would drop the prediction of the longest target's first token."""
    examples = _examples(tiny_tokenizer)
    cut = collate_for_training(examples, tiny_tokenizer.pad_token_id)
    first_label = min(ex["labels"].index(next(l for l in ex["labels"] if l != IGNORE_INDEX)) + (
        cut["input_ids"].shape[1] - len(ex["labels"])) for ex in examples)
    assert cut["logits_to_keep"] == cut["input_ids"].shape[1] - first_label + 1
    assert cut["labels"][:, 0].eq(IGNORE_INDEX).all()  # the kept predecessor position's own label is ignored
