"""Teacher LLMs that write summaries and expansions: an OpenAI-compatible API client and a local HF LM."""
from easynlp_bp.pipelines.collect.teachers.base import TEACHERS, Messages, Teacher, TeacherReply
from easynlp_bp.pipelines.collect.teachers.local_hf import LocalHFConfig, LocalHFTeacher
from easynlp_bp.pipelines.collect.teachers.openai_chat import OpenAIChatConfig, OpenAIChatTeacher, RateLimiter

__all__ = [
    "TEACHERS", "Messages", "Teacher", "TeacherReply", "LocalHFConfig", "LocalHFTeacher",
    "OpenAIChatConfig", "OpenAIChatTeacher", "RateLimiter",
]
