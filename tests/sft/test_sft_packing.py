"""Packed SFT rows (pairs sharing a row, each seeing only itself) give every pair the logits it has alone, and the
batch the padded batch's loss and gradients, with fewer tokens."""
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from easynlp_bp.models.bloom_sdpa import takes_packed_rows
from easynlp_bp.models.kernels import use_fused_kernels
from easynlp_bp.sft.data import IGNORE_INDEX, collate_for_training, collate_left_padded, encode_pair
from easynlp_bp.sft.packing import collate_packed, rows_first_fit
from tests.conftest import build_tiny_bloom

PAIRS = [("a cat", "a cat, 8k, highly detailed"),
         ("two red foxes on the snowy hill at night", "two red foxes on the snowy hill at night, moonlight"),
         ("bond", "bond, cinematic lighting, concept art, trending on artstation, by greg rutkowski"),
         ("an old man reading a newspaper in a cafe", "an old man reading a newspaper in a cafe, film grain"),
         ("castle", "castle, matte painting, epic"),
         ("a dog", "a dog, bokeh"),
         ("a futuristic city skyline at dusk with flying cars and neon signs reflected in the wet streets below",
          "a futuristic city skyline at dusk with flying cars and neon signs reflected in the wet streets below, "
          "cyberpunk, octane render, highly detailed, 8k, trending on artstation")]


def _examples(tokenizer):
    return [encode_pair(raw, target, tokenizer, 192) for raw, target in PAIRS]


def _patched_bloom(tokenizer):
    model = build_tiny_bloom(tokenizer, n_layer=2, seed=3)
    use_fused_kernels(model)
    return model


def _position_of_each_pair(batch, examples):
    """(row, first column) of every example in the packed batch, found by its token ids."""
    found = []
    for ex in examples:
        ids = torch.tensor(ex["input_ids"])
        for row in range(batch["input_ids"].shape[0]):
            windows = batch["input_ids"][row].unfold(0, len(ids), 1)
            hits = (windows == ids).all(dim=1).nonzero().flatten()
            if len(hits):
                found.append((row, int(hits[0])))
                break
    return found


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32-sdpa", "bf16-autocast-eager"])
def test_each_packed_pair_has_the_logits_it_has_alone(tiny_tokenizer, bf16):
    """bf16: the app's path on a CPU with native bf16 (autocast, transformers' eager attention)."""
    model = _patched_bloom(tiny_tokenizer)
    examples = _examples(tiny_tokenizer)
    packed = collate_packed(examples, tiny_tokenizer.pad_token_id)
    assert packed["input_ids"].shape[0] < len(examples)  # some pairs share a row
    tolerance = {"atol": 3e-3, "rtol": 0.0} if bf16 else {"atol": 2e-5, "rtol": 1e-4}  # measured: 0 apart
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids=packed["input_ids"], attention_mask=packed["attention_mask"]).logits
        for ex, (row, start) in zip(examples, _position_of_each_pair(packed, examples)):
            alone = model(input_ids=torch.tensor([ex["input_ids"]])).logits[0]
            torch.testing.assert_close(logits[row, start:start + len(ex["input_ids"])], alone, **tolerance)


def test_packed_batch_has_the_padded_batchs_loss_and_gradients_with_fewer_tokens(tiny_tokenizer):
    model = _patched_bloom(tiny_tokenizer).train()
    examples = _examples(tiny_tokenizer)
    padded = collate_for_training(examples, tiny_tokenizer.pad_token_id)
    packed = collate_packed(examples, tiny_tokenizer.pad_token_id)
    labelled = sum(1 for ex in examples for label in ex["labels"] if label != IGNORE_INDEX)
    assert int((packed["shift_labels"] != IGNORE_INDEX).sum()) == labelled  # every target token, once
    assert packed["input_ids"].numel() < collate_left_padded(examples, tiny_tokenizer.pad_token_id)["input_ids"].numel()

    grads = []
    for batch in (padded, packed):
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (padded_loss, padded_grads), (packed_loss, packed_grads) = grads
    torch.testing.assert_close(packed_loss, padded_loss, atol=1e-5, rtol=1e-5)
    for packed_grad, padded_grad in zip(packed_grads, padded_grads):
        torch.testing.assert_close(packed_grad, padded_grad, atol=1e-5, rtol=1e-3)


def test_rows_hold_every_pair_once_and_are_no_longer_than_the_longest_pair():
    lengths = [30, 7, 12, 30, 5, 18, 25, 9]
    rows = rows_first_fit(lengths)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= max(lengths) for row in rows)
    assert len(rows) == 5  # 30 | 30 | 25+5 | 18+12 | 9+7 (first fit, longest first)
    assert rows_first_fit([4]) == [[0]]


def test_a_packed_batch_is_as_wide_as_its_longest_pair(tiny_tokenizer):
    examples = _examples(tiny_tokenizer)
    packed = collate_packed(examples, tiny_tokenizer.pad_token_id)
    assert packed["input_ids"].shape[1] == max(len(ex["input_ids"]) for ex in examples)


def test_only_patched_bloom_models_are_packed(tiny_tokenizer):
    assert takes_packed_rows(_patched_bloom(tiny_tokenizer))
    assert not takes_packed_rows(build_tiny_bloom(tiny_tokenizer))  # transformers' ALiBi wants a 2D mask
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tiny_tokenizer), n_embd=16, n_layer=1, n_head=2))
    use_fused_kernels(gpt2)
    assert not takes_packed_rows(gpt2)  # absolute positions: a packed pair would see shifted ones


def test_a_packed_pair_gets_the_alibi_positions_it_has_alone(tiny_tokenizer):
    """Within-pair positions, not row positions: the same ALiBi values, so bf16 rounds them as for the pair alone."""
    model = _patched_bloom(tiny_tokenizer)
    examples = _examples(tiny_tokenizer)
    packed = collate_packed(examples, tiny_tokenizer.pad_token_id)
    heads = model.config.n_head
    alibi = model.transformer.build_alibi_tensor(packed["attention_mask"], heads, torch.float32)
    alibi = alibi.view(len(packed["input_ids"]), heads, -1)
    for ex, (row, start) in zip(examples, _position_of_each_pair(packed, examples)):
        alone = model.transformer.build_alibi_tensor(torch.ones(1, len(ex["input_ids"]), dtype=torch.long), heads,
                                                     torch.float32)
        assert torch.equal(alibi[row, :, start:start + len(ex["input_ids"])], alone.view(heads, -1))


def test_sft_training_packs_patched_bloom_and_pads_other_models(tiny_tokenizer, tmp_path):
    from easynlp_bp.sft.data import BeautifulPromptDataset
    from easynlp_bp.sft.training import FROM_SCRATCH_SFT, train_sft

    rows = [{"raw_prompt": raw, "prompt": target} for raw, target in PAIRS]
    dataset = BeautifulPromptDataset(rows, tiny_tokenizer, 192)
    hp = {**FROM_SCRATCH_SFT, "epoch_num": 1, "micro_batch_size": len(PAIRS), "logging_steps": 1}
    for model, packed in ((_patched_bloom(tiny_tokenizer), True), (build_tiny_bloom(tiny_tokenizer), False)):
        trainer, _ = train_sft(model, tiny_tokenizer, dataset, None, str(tmp_path / str(packed)), hp, seed=0, bf16="false")
        batch = trainer.data_collator([dataset[i] for i in range(len(dataset))])
        assert batch["attention_mask"].dim() == (4 if packed else 2)
        assert trainer.state.global_step == 1 and trainer.state.log_history[0]["loss"] > 0
