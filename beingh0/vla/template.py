"""Chat templates: InternVL's ``internvl2_5`` (ChatML) and its system prompts.

``internvl2_5`` renders one user turn as::

    <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{user}<|im_end|>\\n<|im_start|>assistant\\n

and the assistant's answer is followed by ``<|im_end|>`` (InternVL's ``conversation.py``, MPT-style
separators; Being-H0's ``being_h0`` template is the same text with another system prompt).
"""
from __future__ import annotations

from ..core.errors import UserValueError

__all__ = ["SYSTEM_PROMPTS", "IM_START", "IM_END", "chat_prompt", "system_prompt"]

IM_START, IM_END = "<|im_start|>", "<|im_end|>"

#: System prompts by name. ``internvl`` is InternVL3's default (its config has system_message null,
#: so the template's default applies); ``being_h0`` is ours, in the spirit of Being-H0's template.
SYSTEM_PROMPTS = {
    "internvl": "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。",
    "being_h0": "You are Being-H0, a vision-language-action model that reads an image and an instruction and "
                "writes the motion of human hands as motion tokens, and describes hand motion in words.",
}


def system_prompt(name_or_text: str | None) -> str | None:
    """A named system prompt, a literal one (any text that is not a name), or None for none."""
    if name_or_text is None:
        return None
    if not isinstance(name_or_text, str):
        raise UserValueError(f"system prompt must be a string or None, got {type(name_or_text).__name__}")
    return SYSTEM_PROMPTS.get(name_or_text, name_or_text)


def chat_prompt(user: str, system: str | None = "being_h0") -> str:
    """The ``internvl2_5`` text of one user turn, ending where the assistant starts to write."""
    sys = system_prompt(system)
    head = "" if sys is None else f"{IM_START}system\n{sys}{IM_END}\n"
    return f"{head}{IM_START}user\n{user}{IM_END}\n{IM_START}assistant\n"
