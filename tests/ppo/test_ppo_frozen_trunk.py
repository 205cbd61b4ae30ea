"""Frozen-trunk reuse and response-only logits: the fast path equals the plain full forward."""
import pytest
import torch

from conftest import build_tiny_bloom
from easynlp_bp.ppo.advantages import compute_gae, compute_token_rewards, masked_whiten
from easynlp_bp.ppo.config import PPOConfig
from easynlp_bp.ppo.frozen_trunk import TrunkSplit, shares_trunk
from easynlp_bp.ppo.rollout import response_logprobs, response_values
from easynlp_bp.ppo.trainer import PPOTrainer
from easynlp_bp.ppo.value_head import PolicyWithValueHead, ReferenceModel, build_reference

ROWS = [{"raw_prompt": r} for r in ["a cat", "1 girl", "a dragon in the snow", "a castle at night",
                                    "a fox", "a robot on the moon", "an owl", "a ship"]]


def tiny_model(kind: str, vocab: int = 120, n_layer: int = 3):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if kind == "llama":
        config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=n_layer,
                             num_attention_heads=4, num_key_value_heads=2, pad_token_id=0)
        return LlamaForCausalLM(config).eval()
    config = GPT2Config(vocab_size=vocab, n_embd=32, n_layer=n_layer, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, pad_token_id=0)
    return GPT2LMHeadModel(config).eval()


def left_padded_batch(vocab: int = 120):
    torch.manual_seed(1)
    ids = torch.randint(5, vocab, (3, 11))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding, as rollouts have
    mask[2, :2] = 0
    return ids.masked_fill(mask == 0, 0), mask


@pytest.fixture(params=["bloom", "llama", "gpt2"])
def model(request, tiny_tokenizer):
    if request.param == "bloom":
        return build_tiny_bloom(tiny_tokenizer, n_layer=3)
    return tiny_model(request.param, vocab=len(tiny_tokenizer))


def test_top_only_from_the_cached_trunk_equals_the_full_forward(model):
    ids, mask = left_padded_batch(model.config.vocab_size)
    policy = PolicyWithValueHead(model, num_layers_unfrozen=1)
    torch.nn.init.normal_(policy.value_head.weight)  # a value head that reads the hidden state
    reference = build_reference(policy)
    full_logits, full_values = policy(ids, mask)
    hooks = [(len(m._forward_pre_hooks), len(m._forward_hooks)) for m in policy.trunk.layers]  # transformers' own
    trunk = policy.frozen_trunk_hidden(ids, mask)
    assert trunk.shape == (3, 11, model.config.hidden_size) and not trunk.requires_grad
    logits, values = policy(ids, mask, logits_to_keep=5, trunk_hidden=trunk)
    assert logits.shape == (3, 5, model.config.vocab_size) and values.shape == (3, 5)
    real = mask[:, -5:].bool()  # padded positions are never read
    assert torch.allclose(logits[real], full_logits[:, -5:][real], atol=1e-5)
    assert torch.allclose(values[real], full_values[:, -5:][real], atol=1e-5)
    assert torch.allclose(reference(ids, mask, logits_to_keep=5, trunk_hidden=trunk)[real],
                          reference(ids, mask)[:, -5:][real], atol=1e-5)
    # the model is left as it was: all layers back, no hook left behind
    split = policy.trunk
    assert len(getattr(split.container, split.layers_name)) == 3
    assert [(len(m._forward_pre_hooks), len(m._forward_hooks)) for m in split.layers] == hooks
    assert torch.equal(policy(ids, mask)[0], full_logits)


def test_cached_trunk_gives_the_same_gradients_as_the_full_forward(tiny_tokenizer):
    model = build_tiny_bloom(tiny_tokenizer, n_layer=3)
    policy = PolicyWithValueHead(model, num_layers_unfrozen=2)
    torch.nn.init.normal_(policy.value_head.weight)
    ids, mask = left_padded_batch(len(tiny_tokenizer))
    response = ids[:, -4:]

    def loss_and_grads(trunk):
        policy.zero_grad(set_to_none=True)
        logits, values = policy(ids, mask, logits_to_keep=5 if trunk is not None else 0, trunk_hidden=trunk)
        logprobs, _ = response_logprobs(logits, response, 7, 1.0)
        loss = -logprobs.sum() + (response_values(values, 7, 4) ** 2).sum()
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in policy.named_parameters() if p.requires_grad}

    loss_full, grads_full = loss_and_grads(None)
    loss_cached, grads_cached = loss_and_grads(policy.frozen_trunk_hidden(ids, mask))
    assert torch.allclose(loss_full, loss_cached, atol=1e-5)
    assert set(grads_full) == set(grads_cached) and any(n.startswith("base.transformer.h.1.") for n in grads_full)
    for name, grad in grads_full.items():
        assert grad.abs().sum() > 0, name
        assert torch.allclose(grad, grads_cached[name], atol=1e-5, rtol=1e-4), name


def test_response_logprobs_read_the_same_positions_from_kept_logits():
    torch.manual_seed(0)
    logits = torch.randn(2, 9, 7)
    response = torch.randint(0, 7, (2, 4))
    full, _ = response_logprobs(logits, response, 5, 1.0)
    kept, _ = response_logprobs(logits[:, -5:], response, 5, 1.0)
    assert torch.equal(full, kept)
    assert torch.equal(response_values(logits[..., 0], 5, 4), response_values(logits[:, -5:, 0], 5, 4))
    with pytest.raises(ValueError, match="need the last 5 of 9"):
        response_logprobs(logits[:, -4:], response, 5, 1.0)


def test_shares_trunk_only_for_the_reference_built_on_the_policy(tiny_tokenizer):
    policy = PolicyWithValueHead(build_tiny_bloom(tiny_tokenizer, n_layer=3), num_layers_unfrozen=1)
    assert shares_trunk(policy.base, build_reference(policy).base, 1)
    assert not shares_trunk(policy.base, ReferenceModel(build_tiny_bloom(tiny_tokenizer, n_layer=3)).base, 1)
    assert PolicyWithValueHead(build_tiny_bloom(tiny_tokenizer, n_layer=3)).trunk is None  # -1: nothing frozen
    with pytest.raises(ValueError, match="needs 1..2 top layers of the model's 3"):
        TrunkSplit(build_tiny_bloom(tiny_tokenizer, n_layer=3), 3)


def make_trainer(tiny_tokenizer, reuse_trunk: bool, num_layers_unfrozen: int = 1):
    config = PPOConfig(num_rollouts=8, chunk_size=4, mini_batch_size=4, ppo_epochs=2, max_new_tokens=12,
                       learning_rate=1e-3, num_layers_unfrozen=num_layers_unfrozen, forward_batch_size=4, seed=3)
    reward = lambda raw, prompts, refs: torch.tensor([len(p) / 40 for p in prompts])  # noqa: E731
    trainer = PPOTrainer(build_tiny_bloom(tiny_tokenizer, n_layer=3), None, reward, tiny_tokenizer, config)
    assert trainer.reuse_trunk == (num_layers_unfrozen > 0)
    torch.nn.init.normal_(trainer.unwrapped.value_head.weight, std=0.1)
    trainer.reuse_trunk = reuse_trunk
    return trainer


def test_trainer_rollout_losses_and_gradients_equal_with_and_without_the_cache(tiny_tokenizer):
    results = []
    for reuse in (True, False):
        trainer = make_trainer(tiny_tokenizer, reuse)
        torch.manual_seed(11)
        batch, _ = trainer.rollout(ROWS)
        mask = batch.response_mask.float()
        rewards, _ = compute_token_rewards(batch.scores, batch.logprobs, batch.ref_logprobs, mask, 0.05)
        advantages, returns = compute_gae(rewards, batch.values, mask, 1.0, 0.95)
        stats = trainer.accumulate_gradients(batch, torch.tensor([5, 0, 2, 7]), masked_whiten(advantages, mask), returns)
        grads = {n: p.grad.clone() for n, p in trainer.unwrapped.named_parameters() if p.grad is not None}
        results.append((batch, stats, grads))
    (cached, cached_stats, cached_grads), (plain, plain_stats, plain_grads) = results
    # same seeds -> the same rollouts; the cache changes no number downstream
    assert torch.equal(cached.response_ids, plain.response_ids) and torch.equal(cached.scores, plain.scores)
    assert plain.trunk_hidden is None
    assert cached.trunk_hidden.shape == (8, cached.query_ids.shape[1] + cached.response_ids.shape[1], 32)
    for name in ("logprobs", "values", "ref_logprobs"):
        assert torch.allclose(getattr(cached, name), getattr(plain, name), atol=1e-5), name
    for key in ("loss/policy", "loss/value", "policy/entropy", "policy/approx_kl"):
        assert cached_stats[key] == pytest.approx(plain_stats[key], abs=1e-5), key
    assert set(cached_grads) == set(plain_grads) and len(plain_grads) > 2
    for name, grad in plain_grads.items():
        assert torch.allclose(cached_grads[name], grad, atol=1e-5, rtol=1e-4), name


def test_step_reports_the_memory_of_the_cached_trunk(tiny_tokenizer):
    trainer = make_trainer(tiny_tokenizer, True)
    stats = trainer.step(ROWS)
    width = stats["memory/trunk_cache_bytes"] / (8 * 32 * 4)  # episodes x hidden x float32
    assert width == int(width) and width > 12  # query + response positions
    assert stats["policy/first_ratio_max_dev"] < 1e-4  # old log-probs (cached path) = first update forward
    assert make_trainer(tiny_tokenizer, False).step(ROWS)["memory/trunk_cache_bytes"] == 0


def test_trunk_recorded_while_sampling_equals_the_trunk_forward(tiny_tokenizer, monkeypatch):
    """The last frozen layer's outputs recorded during sampling are the trunk's outputs at every position that
    entered the model (all but each chunk's last sampled token, which no log-prob or value reads), and the
    trainer's rollout scores on them without running the trunk again."""
    from easynlp_bp.ppo.rollout import generate_responses

    trainer = make_trainer(tiny_tokenizer, True)
    policy = trainer.unwrapped
    layer = policy.trunk.layers[policy.trunk.n_frozen - 1]
    torch.manual_seed(5)
    batch = generate_responses(policy.base, tiny_tokenizer, [r["raw_prompt"] for r in ROWS], chunk_size=3,
                               max_new_tokens=12, temperature=1.0, top_k=0, top_p=1.0, device=torch.device("cpu"),
                               trunk_layer=layer)
    torch.manual_seed(5)
    plain = generate_responses(policy.base, tiny_tokenizer, [r["raw_prompt"] for r in ROWS], chunk_size=3,
                               max_new_tokens=12, temperature=1.0, top_k=0, top_p=1.0, device=torch.device("cpu"))
    assert torch.equal(batch.response_ids, plain.response_ids) and plain.trunk_hidden is None
    ids, mask = batch.input_ids()
    full = policy.frozen_trunk_hidden(ids, mask)
    Q = batch.query_ids.shape[1]
    fed = mask.bool().clone()
    for start in range(0, 8, 3):  # a chunk's last sampled position never entered the model
        sampled = int(batch.response_mask[start : start + 3].sum(1).max())  # the chunk's sampling steps
        fed[start : start + 3, Q + sampled - 1 :] = False
    assert int(fed.sum()) >= int(mask.sum()) - 8  # all but at most one position per row
    torch.testing.assert_close(batch.trunk_hidden[fed], full[fed], rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(type(policy), "frozen_trunk_hidden", lambda *args: pytest.fail("the trunk ran again"))
    torch.manual_seed(5)
    trainer.rollout(ROWS)
