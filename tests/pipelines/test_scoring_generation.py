"""Image generation on a tiny random StableDiffusionPipeline: seeds, batching, long prompts, config checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from easynlp_bp.pipelines.scoring.generation import GenerationConfig, ImageGenerator
from fixtures.tiny_diffusion import save_tiny_stable_diffusion


@pytest.fixture(scope="module")
def tiny_sd_dir(tmp_path_factory):
    return save_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="module")
def generator(tiny_sd_dir):
    return make_generator(tiny_sd_dir)


def make_generator(model_dir, **overrides) -> ImageGenerator:
    settings = dict(model=str(model_dir), num_inference_steps=2, height=32, width=32, num_seeds=3, device="cpu")
    return ImageGenerator.from_config(GenerationConfig(**{**settings, **overrides}))


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_loads_with_euler_ancestral_by_default(tiny_sd_dir, generator):
    assert type(generator.pipeline.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert generator.pipeline.unet.dtype == torch.float32  # auto on CPU
    assert type(make_generator(tiny_sd_dir, scheduler="ddim").pipeline.scheduler).__name__ == "DDIMScheduler"


def test_same_seed_same_image_and_k_seeds_differ(generator):
    first = generator.generate("a red fox in the snow")
    again = generator.generate("a red fox in the snow")
    assert first.seeds == [0, 1, 2] and len(first.images) == 3
    assert first.images[0].size == (32, 32)
    for a, b in zip(first.images, again.images):
        assert np.array_equal(pixels(a), pixels(b))
    differences = [np.abs(pixels(first.images[i]) - pixels(first.images[j])).mean() for i, j in ((0, 1), (0, 2), (1, 2))]
    assert min(differences) > 1.0  # K seeds give K different images
    # The image of seed 1 does not depend on which other seeds share its batch.
    alone = generator.generate("a red fox in the snow", seeds=[1])
    assert np.abs(pixels(alone.images[0]) - pixels(first.images[1])).max() <= 1


def test_short_prompt_chunk_encoding_equals_the_pipeline_encoding(generator):
    ours = generator.encoder.encode(["a cat on a sofa"], "cpu")[0]
    theirs, _ = generator.pipeline.encode_prompt("a cat on a sofa", "cpu", 1, False)
    assert ours.shape == theirs.shape == (1, 77, 32)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_long_prompts_are_chunked_not_cut(tiny_sd_dir, generator):
    head = "a castle on a hill at dusk, " * 4  # 84 tokens in the char-level tokenizer (spaces split words)
    prompt_a, prompt_b = head + "golden light", head + "blue fog everywhere"
    embeds = generator.encoder.encode([prompt_a, ""], "cpu")
    assert [e.shape for e in embeds] == [(1, 154, 32), (1, 154, 32)]  # 2 chunks each, negative padded to match
    a, b = generator.generate(prompt_a, seeds=[0]), generator.generate(prompt_b, seeds=[0])
    assert a.clip_tokens == len(prompt_a.replace(" ", "")) + 2 > 77  # one token per character, plus BOS/EOS
    assert np.abs(pixels(a.images[0]) - pixels(b.images[0])).mean() > 0.5  # the words after token 77 count
    truncating = make_generator(tiny_sd_dir, num_seeds=1, long_prompt="truncate")
    a, b = truncating.generate(prompt_a), truncating.generate(prompt_b)
    assert np.array_equal(pixels(a.images[0]), pixels(b.images[0]))  # documented truncation: the tail is lost


def test_negative_prompt_changes_the_image(tiny_sd_dir, generator):
    plain = generator.generate("a bowl of fruit", seeds=[0])
    negative = make_generator(tiny_sd_dir, num_seeds=1, negative_prompt="blurry, low quality").generate("a bowl of fruit")
    assert np.abs(pixels(plain.images[0]) - pixels(negative.images[0])).mean() > 0.5


@pytest.mark.parametrize("overrides, message", [
    ({"scheduler": "euler_a"}, "scheduler='euler_a' is unknown"),
    ({"height": 30}, "multiples of 8"),
    ({"num_seeds": 0}, "must be >= 1"),
    ({"long_prompt": "cut"}, "chunk or truncate"),
    ({"dtype": "float16", "device": "cpu"}, "float16 is not supported on CPU"),
])
def test_bad_generation_settings_are_refused(tiny_sd_dir, overrides, message):
    with pytest.raises(ValueError, match=message):
        make_generator(tiny_sd_dir, **overrides)
