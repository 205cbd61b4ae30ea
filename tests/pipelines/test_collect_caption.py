"""The caption step on a tiny BLIP built from a config (random weights) and a few generated images."""
from __future__ import annotations

import json

import pytest

from easynlp_bp.pipelines.collect import CollectConfig, collect_pairs
from easynlp_bp.pipelines.collect.steps import BlipCaptioner, load_image

pytest.importorskip("PIL")


@pytest.fixture(scope="module")
def tiny_blip_dir(tmp_path_factory):
    import torch
    from transformers import BertTokenizerFast, BlipConfig, BlipForConditionalGeneration, BlipProcessor
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    path = tmp_path_factory.mktemp("tiny_blip")
    words = ["a", "cat", "dog", "red", "blue", "castle", "sky", "on", "the", "picture", "of"]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(tokens)})
    processor = BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    config = BlipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, encoder_hidden_size=32, max_position_embeddings=64,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
                         sep_token_id=tokenizer.sep_token_id, eos_token_id=tokenizer.sep_token_id),
        projection_dim=32,
    )
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config)
    with torch.no_grad():  # random weights mostly emit special tokens; favour words so captions are text
        word_ids = tokenizer.convert_tokens_to_ids(words)
        model.text_decoder.cls.predictions.bias[word_ids] += 4.0
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _images(folder, n=3):
    from PIL import Image

    paths = []
    for i in range(n):
        image = Image.new("RGB", (40 + 8 * i, 36), color=(60 * i, 255 - 60 * i, 90))
        image.putpixel((3, 3), (255, 255, 255))
        paths.append(folder / f"img{i}.png")
        image.save(paths[-1])
    return paths


def test_tiny_blip_captions_generated_images_without_torchvision(tiny_blip_dir, tmp_path):
    captioner = BlipCaptioner.from_pretrained(str(tiny_blip_dir), batch_size=2, max_new_tokens=5)
    images = [load_image(str(p)) for p in _images(tmp_path)]
    captions = captioner.caption(images)
    assert len(captions) == 3 and all(c.strip() for c in captions)
    assert captioner.caption(images) == captions  # greedy, deterministic
    vocabulary = {"a", "cat", "dog", "red", "blue", "castle", "sky", "on", "the", "picture", "of"}
    assert all(set(c.split()) <= vocabulary for c in captions)  # decoded with the saved tokenizer


def test_caption_step_in_the_pipeline(tiny_blip_dir, tmp_path):
    paths = _images(tmp_path)
    high = "a red castle on a cliff, highly detailed, concept art, dramatic lighting, by some painter, 8k"
    rows = [{"prompt": f"{high} number {i}", "image": p.name} for i, p in enumerate(paths)]
    rows += [{"prompt": f"{high} without an image"}, {"prompt": f"{high} broken", "image": "missing.png"},
             {"prompt": "a cat", "image": paths[0].name}]  # low quality: not captioned
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = CollectConfig(steps="caption", caption_model=str(tiny_blip_dir), image_root=str(tmp_path),
                           filters="", progress=False, caption_batch_size=2)
    result = collect_pairs(str(corpus), str(tmp_path / "pairs.jsonl"), config)
    step = result.stats["steps"]["caption"]
    assert (step["inputs"], step["rows_with_image"], step["rows_without_image"]) == (5, 4, 1)
    assert step["rejected"] == 1 and "missing.png" in result.rejects[0].reason
    assert step["captioned"] + step["from_cache"] == 3
    assert [p["row"] for p in result.pairs] == [1, 2, 3] and {p["source"] for p in result.pairs} == {"caption"}
    assert all(p["raw_prompt"] for p in result.pairs)
    assert all(p["prompt"].startswith(high) for p in result.pairs)
    again = collect_pairs(str(corpus), str(tmp_path / "pairs.jsonl"), config)
    assert again.stats["steps"]["caption"]["captioned"] == 0  # captions come from the cache
    assert again.pairs == result.pairs
