"""Text generation through the book's loading policy (Chapter 1)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmbook import hub
from mmbook.apps.common import checked, once, raw, whole_number
from mmbook.limits import MAX_TEXT_CHARS

MAX_NEW_TOKENS = 100


@once
def generator() -> Any:
    """The text-generation pipeline, built once: GPT-2 online, the tiny stand-in offline (Chapter 1)."""
    return hub.pipeline("text-generation", "gpt2")


@checked
def complete(prompt: str, max_new_tokens: int = 30) -> str:
    """Continue ``prompt`` greedily; the pipeline returns ``[{"generated_text": ...}]`` (Chapter 1)."""
    prompt = prompt.strip() if isinstance(prompt, str) else ""
    if not prompt:
        raise gr.Error("Please type the beginning of a sentence.")
    if len(prompt) > MAX_TEXT_CHARS:
        raise gr.Error(f"The prompt has {len(prompt):,} characters; please use at most {MAX_TEXT_CHARS}.")
    count = whole_number(max_new_tokens, "number of new tokens", 1, MAX_NEW_TOKENS)
    out = generator()(prompt, max_new_tokens=count, do_sample=False)
    return out[0]["generated_text"]


def build_textgen_app() -> gr.Blocks:
    """A prompt box, a length slider and the continuation (Chapter 1)."""
    generator()  # loaded now, before the first request
    return gr.Interface(
        fn=complete,
        inputs=[
            gr.Textbox(label="Prompt", placeholder="a red circle"),
            raw(gr.Slider(1, MAX_NEW_TOKENS, value=30, step=1, label="New tokens")),
        ],
        outputs=gr.Textbox(label="Continuation"),
        title="Text generation",
        description="GPT-2 when the Hugging Face Hub is reachable; offline, the book's tiny stand-in.",
        flagging_mode="never",
    )
