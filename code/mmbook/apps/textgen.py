"""Text generation through the book's loading policy (Chapter 1)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import gradio as gr

from mmbook import hub

MAX_PROMPT = 500


@lru_cache(maxsize=1)
def generator() -> Any:
    """The text-generation pipeline, built once: GPT-2 online, the tiny stand-in offline (Chapter 1)."""
    return hub.pipeline("text-generation", "gpt2")


def complete(prompt: str, max_new_tokens: int = 30) -> str:
    """Continue ``prompt`` greedily; the pipeline returns ``[{"generated_text": ...}]`` (Chapter 1)."""
    prompt = (prompt or "").strip()
    if not prompt:
        raise gr.Error("Please type the beginning of a sentence.")
    if len(prompt) > MAX_PROMPT:
        raise gr.Error(f"The prompt has {len(prompt)} characters; please use at most {MAX_PROMPT}.")
    if not 1 <= int(max_new_tokens) <= 100:
        raise gr.Error("The number of new tokens must be between 1 and 100.")
    out = generator()(prompt, max_new_tokens=int(max_new_tokens), do_sample=False)
    return out[0]["generated_text"]


def build_textgen_app() -> gr.Blocks:
    """A prompt box, a length slider and the continuation (Chapter 1)."""
    return gr.Interface(
        fn=complete,
        inputs=[
            gr.Textbox(label="Prompt", placeholder="a red circle"),
            gr.Slider(1, 100, value=30, step=1, label="New tokens"),
        ],
        outputs=gr.Textbox(label="Continuation"),
        title="Text generation",
        description="GPT-2 when the Hugging Face Hub is reachable; offline, the book's tiny stand-in.",
        flagging_mode="never",
    )
