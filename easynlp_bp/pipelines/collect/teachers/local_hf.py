"""A teacher that is a local Hugging Face causal LM (any chat or instruction model on disk or the hub).

Messages are rendered with the tokenizer's chat template when it has one, else as plain
``system\\n\\nuser\\n`` text; generation is batched with left padding and greedy by default.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

from easynlp_bp.pipelines.collect.teachers.base import TEACHERS, Messages, OnReply, TeacherReply

logger = logging.getLogger(__name__)


@dataclass
class LocalHFConfig:
    """Which model, and how it generates."""

    model: str = ""
    max_new_tokens: int = 96
    batch_size: int = 8
    do_sample: bool = False
    temperature: float = 0.7
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("teacher_model is empty; give a local model directory or a hub id for teacher=local_hf.")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError(
                f"teacher_max_tokens={self.max_new_tokens} and teacher_concurrency (batch size)={self.batch_size} "
                "must be at least 1."
            )


@TEACHERS.register("local_hf")
class LocalHFTeacher:
    """Generate teacher replies with a causal LM held in this process.

    Example:
        >>> teacher = LocalHFTeacher(model, tokenizer, LocalHFConfig(model="my-dir"))
        >>> teacher.complete([[{"role": "user", "content": "Summarize: a castle, 8k"}]])[0].text
    """

    def __init__(self, model, tokenizer, config: LocalHFConfig):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config
        self.identity = f"local_hf:{config.model}:sample={config.do_sample}:max={config.max_new_tokens}"
        if tokenizer.pad_token_id is None:
            raise ValueError(
                f"The tokenizer of {config.model!r} has no pad token; set one (e.g. tokenizer.pad_token = "
                "tokenizer.eos_token) before using it as a batched teacher."
            )
        tokenizer.padding_side = "left"  # decoder-only batched generation continues from the right edge

    @classmethod
    def from_pretrained(cls, config: LocalHFConfig) -> "LocalHFTeacher":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(config.model, trust_remote_code=config.trust_remote_code)
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(config.model, trust_remote_code=config.trust_remote_code)
        return cls(model, tokenizer, config)

    def render(self, messages: Messages) -> str:
        """The text the model continues: its chat template, or plain turns when it has none."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages) + "\n"

    def complete(self, requests: Sequence[Messages], on_reply: Optional[OnReply] = None,
                 progress_desc: str = "teacher", progress: bool = True) -> list[TeacherReply]:
        import torch
        from tqdm.auto import tqdm

        replies: list[TeacherReply] = []
        size = self.config.batch_size
        for start in tqdm(range(0, len(requests), size), desc=progress_desc, unit="batch", disable=not progress):
            texts = [self.render(m) for m in requests[start:start + size]]
            batch = self.tokenizer(texts, return_tensors="pt", padding=True)
            batch.pop("token_type_ids", None)
            sampling = {"do_sample": True, "temperature": self.config.temperature} if self.config.do_sample \
                else {"do_sample": False}
            with torch.no_grad():
                output = self.model.generate(
                    **batch, max_new_tokens=self.config.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                    **sampling,
                )
            new_tokens = output[:, batch["input_ids"].shape[1]:]  # (B, new) - only what the teacher wrote
            for offset, text in enumerate(self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
                text = text.strip()
                reply = TeacherReply(text=text) if text else TeacherReply(error="empty reply")
                replies.append(reply)
                if on_reply is not None:
                    on_reply(start + offset, reply)
        return replies
