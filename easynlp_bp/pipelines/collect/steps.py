"""The pair-making steps, registered by name: ``summarize`` and ``caption`` make a low-quality partner
for a high-quality prompt, ``expand`` makes a high-quality partner for a low-quality one (paper, sec. 3.1).

Teacher replies and captions go through the :class:`ReplyCache` as soon as each one arrives, so a rerun
asks only for what is missing. A reply the step cannot use becomes a per-row reject with the reason.
"""
from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from easynlp_bp.io.readers import Reject
from easynlp_bp.pipelines.collect.cache import ReplyCache, cache_key
from easynlp_bp.pipelines.collect.teachers.base import Messages, TeacherReply
from easynlp_bp.registry import Registry

logger = logging.getLogger(__name__)

STEPS: Registry = Registry("pair step")

# The paper's two teacher instructions, in our own words.
SUMMARIZE_INSTRUCTION = (
    "Below is a prompt written for a text-to-image model. Say in 10 words or fewer what picture it asks "
    "for. Leave out words about quality, names of artists, and style or rendering modifiers; keep only "
    "the subject and the scene. Answer with the short description alone."
)
EXPAND_INSTRUCTION = (
    "Below is a short description of a picture. Turn it into a detailed, creative prompt for a "
    "text-to-image model such as Stable Diffusion: keep its subject, and add details of the scene, the "
    "style, the lighting and the composition, with quality modifiers. Answer with the prompt alone."
)
SCORE_FIELDS = ("aesthetic_score", "pick_score")


def summarize_messages(prompt: str) -> Messages:
    return [{"role": "system", "content": SUMMARIZE_INSTRUCTION}, {"role": "user", "content": f"Prompt: {prompt}"}]


def expand_messages(description: str) -> Messages:
    return [{"role": "system", "content": EXPAND_INSTRUCTION},
            {"role": "user", "content": f"Description: {description}"}]


_LABEL_PREFIX = re.compile(r"^\s*(?:description|summary|prompt|output|answer)\s*:\s*", re.I)


def clean_reply(text: str) -> str:
    """First line of a reply without a leading label ("Summary:") or wrapping quotes."""
    line = next((part for part in text.strip().splitlines() if part.strip()), "")
    line = _LABEL_PREFIX.sub("", line).strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'`":
        line = line[1:-1].strip()
    return line


# HTML a teacher (or a prompt injection through it) may put in a reply: tags of real HTML elements, script URLs and
# event handlers. Prompt syntax in angle brackets (<lora:name:0.8>, <hypernet:x:1>) is not HTML and is kept.
_MARKUP = re.compile(
    r"</?(?:script|style|iframe|object|embed|svg|img|a|b|i|u|p|br|hr|div|span|html|body|head|meta|link|"
    r"form|input|button|table|tr|td|ul|ol|li|em|strong|code|pre|h[1-6])(?=[\s/>])[^<>]*>|javascript\s*:|"
    r"\bon[a-z]+\s*=\s*[\"']", re.I)


def markup_in(text: str) -> Optional[str]:
    """The first HTML tag, script URL or event handler in ``text`` (a reply to reject), or None."""
    match = _MARKUP.search(text)
    return match.group(0) if match else None


@dataclass
class StepContext:
    """What steps share: the teacher and captioner (when configured), the reply cache and limits."""

    cache: ReplyCache
    teacher: Any = None
    captioner: Any = None
    max_summary_words: int = 15
    min_expansion_gain: int = 3
    image_root: Optional[str] = None
    progress: bool = True


@dataclass
class StepOutput:
    """Pairs made (in input order), rows rejected with reasons, and counts for the report."""

    pairs: list[dict] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def _words(text: str) -> int:
    return len(text.split())


def _scores(row: dict) -> dict:
    return {name: row[name] for name in SCORE_FIELDS if row.get(name) is not None}


def ask_teacher_cached(step: str, texts: Sequence[str], make_messages: Callable[[str], Messages],
                       ctx: StepContext) -> tuple[list[TeacherReply], dict]:
    """Replies for ``texts`` (cached ones are not asked again; equal texts are asked once)."""
    if ctx.teacher is None:
        raise ValueError(f"Step {step!r} needs a teacher; set teacher=openai or teacher=local_hf.")
    instruction = make_messages("")[0]["content"]
    keys = [cache_key(step, ctx.teacher.identity, instruction, text) for text in texts]
    missing = list(dict.fromkeys(k for k in keys if k not in ctx.cache))
    text_of = dict(zip(keys, texts))
    fresh: dict[str, TeacherReply] = {}

    def store(index: int, reply: TeacherReply) -> None:
        fresh[missing[index]] = reply
        if reply.ok:
            ctx.cache.put(missing[index], reply.text, step=step, input=text_of[missing[index]])

    if missing:
        ctx.teacher.complete([make_messages(text_of[k]) for k in missing], on_reply=store,
                             progress_desc=f"{step} (teacher)", progress=ctx.progress)
    replies = [TeacherReply(text=ctx.cache.get(k), attempts=0) if k in ctx.cache else fresh[k] for k in keys]
    stats = {"asked": len(missing), "from_cache": len(set(keys)) - len(missing),
             "teacher_failures": sum(1 for k in missing if not fresh[k].ok)}
    return replies, stats


@STEPS.register("summarize")
class SummarizeStep:
    """High-quality prompt -> the teacher's short plain description of it (the low-quality partner)."""

    name = "summarize"
    input_quality = "high"

    def run(self, rows: Sequence[dict], ctx: StepContext) -> StepOutput:
        out = StepOutput()
        replies, out.stats = ask_teacher_cached(self.name, [r["prompt"] for r in rows], summarize_messages, ctx)
        for row, reply in zip(rows, replies):
            summary = clean_reply(reply.text) if reply.ok else ""
            if not reply.ok:
                reason = reply.error
            elif not summary:
                reason = "empty reply"
            elif markup_in(summary):
                reason = f"reply holds HTML markup ({markup_in(summary)[:40]!r}), not a plain description"
            elif _words(summary) > ctx.max_summary_words:
                reason = (f"summary too long: {_words(summary)} words, the instruction asks for 10 or fewer "
                          f"(limit max_summary_words={ctx.max_summary_words})")
            elif _words(summary) >= _words(row["prompt"]):
                reason = "summary is not shorter than the prompt"
            else:
                out.pairs.append({"raw_prompt": summary, "prompt": row["prompt"], "source": self.name,
                                  "row": row["row"], **_scores(row)})
                continue
            out.rejects.append(Reject(row["row"], f"{self.name}: {reason}", row["prompt"]))
        return out


@STEPS.register("expand")
class ExpandStep:
    """Low-quality prompt -> the teacher's detailed creative prompt (the high-quality partner)."""

    name = "expand"
    input_quality = "low"

    def run(self, rows: Sequence[dict], ctx: StepContext) -> StepOutput:
        out = StepOutput()
        replies, out.stats = ask_teacher_cached(self.name, [r["prompt"] for r in rows], expand_messages, ctx)
        for row, reply in zip(rows, replies):
            expansion = clean_reply(reply.text) if reply.ok else ""
            gain = _words(expansion) - _words(row["prompt"])
            if not reply.ok:
                reason = reply.error
            elif not expansion:
                reason = "empty reply"
            elif markup_in(expansion):
                reason = f"reply holds HTML markup ({markup_in(expansion)[:40]!r}), not a prompt"
            elif gain < ctx.min_expansion_gain:
                reason = f"expansion too short: adds {gain} words, min_expansion_gain={ctx.min_expansion_gain}"
            else:
                # Scores of the low prompt's image say nothing about the expansion, so none are carried.
                out.pairs.append({"raw_prompt": row["prompt"], "prompt": expansion, "source": self.name,
                                  "row": row["row"]})
                continue
            out.rejects.append(Reject(row["row"], f"{self.name}: {reason}", row["prompt"]))
        return out


def load_image(value: Any, image_root: Optional[str] = None):
    """A PIL image from a PIL image, bytes, a ``{"bytes"|"path"}`` dict, a ``data:`` URL or a local path.

    Raises:
        ValueError: the value names no readable image (the message is the reject reason).
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    try:
        if isinstance(value, (bytes, bytearray)):
            return Image.open(io.BytesIO(value)).convert("RGB")
        if isinstance(value, str) and value.startswith("data:"):
            return Image.open(io.BytesIO(base64.b64decode(value.split(",", 1)[1]))).convert("RGB")
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            raise ValueError(f"image {value[:80]!r} is a remote URL; download the images and pass local paths")
        if isinstance(value, str) and value:
            path = Path(image_root) / value if image_root and not Path(value).is_absolute() else Path(value)
            if not path.is_file():
                raise ValueError(f"image file {str(path)!r} does not exist (set image_root to the image folder)")
            with Image.open(path) as image:
                return image.convert("RGB")
    except (UnidentifiedImageError, OSError, IndexError, ValueError) as err:
        raise ValueError(str(err) if isinstance(err, ValueError) else f"unreadable image: {err}") from err
    raise ValueError(f"image field holds {type(value).__name__}, not an image, bytes or a path")


class BlipCaptioner:
    """Captions PIL images with ``BlipForConditionalGeneration`` (batched, greedy).

    Example:
        >>> captioner = BlipCaptioner.from_pretrained("Salesforce/blip-image-captioning-base")
        >>> captioner.caption([image])
    """

    def __init__(self, model, processor, name: str, batch_size: int = 8, max_new_tokens: int = 30):
        self.model = model.eval()
        self.processor = processor
        self.identity = f"blip:{name}:max={max_new_tokens}"
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens

    @classmethod
    def from_pretrained(cls, name: str, **kwargs: Any) -> "BlipCaptioner":
        from transformers import BlipForConditionalGeneration, BlipProcessor

        return cls(BlipForConditionalGeneration.from_pretrained(name), load_blip_processor(name), name, **kwargs)

    def caption(self, images: Sequence[Any]) -> list[str]:
        import torch

        captions: list[str] = []
        for start in range(0, len(images), self.batch_size):
            inputs = self.processor(images=list(images[start:start + self.batch_size]), return_tensors="pt")
            with torch.no_grad():
                output = self.model.generate(pixel_values=inputs["pixel_values"], max_new_tokens=self.max_new_tokens)
            captions += [text.strip() for text in self.processor.batch_decode(output, skip_special_tokens=True)]
        return captions


def load_blip_processor(name: str):
    """``BlipProcessor`` for ``name``; without torchvision it takes the PIL image processor explicitly."""
    import importlib.util

    from transformers import BlipProcessor

    if importlib.util.find_spec("torchvision") is not None:
        return BlipProcessor.from_pretrained(name)
    from transformers import AutoTokenizer
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    return BlipProcessor(image_processor=BlipImageProcessorPil.from_pretrained(name),
                         tokenizer=AutoTokenizer.from_pretrained(name))


def _image_digest(image) -> str:
    return hashlib.sha256(image.tobytes() + repr(image.size).encode()).hexdigest()


@STEPS.register("caption")
class CaptionStep:
    """High-quality prompt with an image -> BLIP's caption of the image (the low-quality partner)."""

    name = "caption"
    input_quality = "high"

    def run(self, rows: Sequence[dict], ctx: StepContext) -> StepOutput:
        from tqdm.auto import tqdm

        if ctx.captioner is None:
            raise ValueError("Step 'caption' needs a captioner; set caption_model to a BLIP model dir or hub id.")
        out = StepOutput()
        with_image = [r for r in rows if r.get("image") not in (None, "")]
        keyed: list[tuple[dict, str, Any]] = []
        for row in with_image:
            try:
                image = load_image(row["image"], ctx.image_root)
            except ValueError as err:
                out.rejects.append(Reject(row["row"], f"{self.name}: {err}", row["prompt"]))
                continue
            keyed.append((row, cache_key(self.name, ctx.captioner.identity, _image_digest(image)), image))
        todo = [(key, image) for _, key, image in keyed if key not in ctx.cache]
        todo = list(dict(todo).items())  # equal images are captioned once
        size = ctx.captioner.batch_size
        for start in tqdm(range(0, len(todo), size), desc="caption (BLIP)", unit="batch", disable=not ctx.progress):
            chunk = todo[start:start + size]
            for (key, _), caption in zip(chunk, ctx.captioner.caption([image for _, image in chunk])):
                ctx.cache.put(key, caption, step=self.name)
        for row, key, _ in keyed:
            caption = clean_reply(ctx.cache.get(key) or "")
            if not caption:
                out.rejects.append(Reject(row["row"], f"{self.name}: empty caption", row["prompt"]))
                continue
            out.pairs.append({"raw_prompt": caption, "prompt": row["prompt"], "source": self.name,
                              "row": row["row"], **_scores(row)})
        out.stats = {"rows_with_image": len(with_image), "rows_without_image": len(rows) - len(with_image),
                     "captioned": len(todo), "from_cache": len(keyed) - len(todo)}
        return out
