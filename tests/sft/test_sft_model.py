"""SFT learns, checkpoints reload exactly, and the seed snippet runs on our output directory."""
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from easynlp_bp.sft.data import BeautifulPromptDataset, collate_left_padded
from easynlp_bp.text.template import build_prompt
from conftest import build_tiny_bloom


def _loss(model, batch):
    return model(**batch).loss


def test_a_few_sft_steps_lower_the_loss(tiny_tokenizer, synthetic_pairs):
    model = build_tiny_bloom(tiny_tokenizer).train()
    dataset = BeautifulPromptDataset(synthetic_pairs[:16], tiny_tokenizer, 256)  # long raw prompts, 600-token vocab
    batch = collate_left_padded([dataset[i] for i in range(len(dataset))], tiny_tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    before = _loss(model, batch).item()
    for _ in range(20):
        optimizer.zero_grad()
        _loss(model, batch).backward()
        optimizer.step()
    after = _loss(model, batch).item()
    assert after < 0.8 * before, (before, after)


def test_trained_dir_reloads_with_the_same_logits(trained_sft_dir):
    tokenizer = AutoTokenizer.from_pretrained(trained_sft_dir)
    model_a = AutoModelForCausalLM.from_pretrained(trained_sft_dir).eval()
    model_b = AutoModelForCausalLM.from_pretrained(trained_sft_dir).eval()
    ids = tokenizer(build_prompt("a cat"), return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model_a(**ids).logits, model_b(**ids).logits)
    assert (trained_sft_dir / "model.safetensors").exists()
    assert (trained_sft_dir / "run_config.json").exists() and (trained_sft_dir / "training_curves.png").exists()
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_seed_snippet_runs_unchanged_on_our_checkpoint(trained_sft_dir):
    # The reference's usage snippet, as users copy it (only the model path differs).
    tokenizer = AutoTokenizer.from_pretrained(str(trained_sft_dir))
    model = AutoModelForCausalLM.from_pretrained(str(trained_sft_dir))
    raw_prompt = "1 girl"
    input = f"Instruction: Give a simple description of the image to generate a drawing prompt.\nInput: {raw_prompt}\nOutput:"
    input_ids = tokenizer.encode(input, return_tensors="pt")
    outputs = model.generate(
        input_ids, max_length=384, do_sample=True, temperature=1.0, top_k=50, top_p=0.95,
        repetition_penalty=1.2, num_return_sequences=5,
    )
    prompts = tokenizer.batch_decode(outputs[:, input_ids.size(1):], skip_special_tokens=True)
    prompts = [p.strip() for p in prompts]
    assert len(prompts) == 5 and all(prompts)
    assert sum("," in p for p in prompts) >= 4  # comma-separated modifiers, SD style
