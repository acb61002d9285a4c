"""Hello world, the first Gradio app of the book (Chapter 1)."""

from __future__ import annotations

import gradio as gr

from mmbook.limits import MAX_TEXT_CHARS


def greet(name: str) -> str:
    """Greet ``name``; empty or overly long input gets a clear ``gr.Error`` (Chapter 1)."""
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise gr.Error("Please type a name.")
    if len(name) > MAX_TEXT_CHARS:
        raise gr.Error(f"That name has {len(name):,} characters; please use at most {MAX_TEXT_CHARS}.")
    return f"Hello, {name}!"


def build_hello_app() -> gr.Blocks:
    """``gr.Interface`` with one text input and one text output (Chapter 1)."""
    return gr.Interface(
        fn=greet,
        inputs=gr.Textbox(label="Your name", placeholder="Ada"),
        outputs=gr.Textbox(label="Greeting"),
        title="Hello, Gradio",
        description="A function, an input and an output: the whole of a Gradio Interface.",
        flagging_mode="never",
    )
