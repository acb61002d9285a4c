"""Chat about a picture with a vision-language model, the answer streamed word by word (Chapter 11).

Online it runs ``HuggingFaceTB/SmolVLM-256M-Instruct``; offline the book's tiny VLM, and says so. The
model code is :mod:`mmbook.chat`; this module only lays it out. Endpoints: ``/ask`` (picture, question,
most new tokens and the history in; the history with the growing answer and an emptied question box out,
streamed) and ``/clear``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from mmbook import chat as chat_module
from mmbook.apps.common import checked, raw
from mmbook.chat import DEFAULT_NEW_TOKENS, MAX_NEW_TOKENS, ChatModel


def example_files(folder: Path | None = None) -> list[list[Any]]:
    """``[picture file, question]`` rows for ``gr.Examples``: :func:`mmbook.chat.example_pictures` saved as
    PNG files, shown at 192 pixels (Chapter 11)."""
    folder = Path(tempfile.mkdtemp(prefix="mmbook-vlm-examples-")) if folder is None else folder
    rows = []
    for i, (picture, question) in enumerate(chat_module.example_pictures()):
        path = folder / f"example_{i}.png"
        Image.fromarray(picture).resize((192, 192), Image.Resampling.NEAREST).save(path)
        rows.append([str(path), question])
    return rows


def build_vlm_chat_app(chat: ChatModel | None = None, *, offline: bool | None = None) -> gr.Blocks:
    """A picture, a chat and a question box; each answer streams in as it is generated (Chapter 11).

    ``chat`` is a loaded model (the tests pass small ones); by default :func:`mmbook.chat.load_chat_model`
    loads the catalogue's VLM now, before the first request: the hub model online, the tiny VLM offline.
    """
    model = chat_module.load_chat_model(offline=offline) if chat is None else chat
    start = checked(chat_module.stream_answer)

    def ask(picture: Any, question: Any, max_new_tokens: Any, history: list[Any] | None
            ) -> Iterator[tuple[list[dict[str, str]], str]]:  # fmt: skip
        pieces = start(model, picture, question, max_new_tokens)  # refusals are gr.Error before anything runs
        turns = [*(history or []), {"role": "user", "content": " ".join(str(question).split())},
                 {"role": "assistant", "content": ""}]  # fmt: skip
        yield turns, ""
        for text in pieces:
            turns[-1] = {"role": "assistant", "content": text}
            yield turns, ""
        if not turns[-1]["content"]:
            turns[-1] = {"role": "assistant", "content": "(the model ended its answer at once)"}
            yield turns, ""

    def clear() -> tuple[list[Any], str]:
        return [], ""

    with gr.Blocks(title="Chat about a picture") as demo:
        gr.Markdown("# Chat about a picture\nAdd a picture, ask a question; the answer appears word by word.")
        gr.Markdown(f"**Which model runs:** {model.note}")
        with gr.Row():
            with gr.Column(scale=1):
                picture = raw(gr.Image(label="Picture", type="filepath", image_mode=None, height=256))
                max_new_tokens = raw(gr.Slider(1, MAX_NEW_TOKENS, value=DEFAULT_NEW_TOKENS, step=1,
                                               label="Most new tokens"))  # fmt: skip
            with gr.Column(scale=2):
                chatbot = gr.Chatbot(label="Conversation", height=320)
                question = gr.Textbox(label="Question", placeholder=chat_module.EXAMPLE_QUESTIONS[0])
                with gr.Row():
                    send = gr.Button("Ask", variant="primary")
                    reset = gr.Button("Clear")
        gr.Examples(example_files(), [picture, question], label="Held-out pictures of the shapes world")
        inputs, outputs = [picture, question, max_new_tokens, chatbot], [chatbot, question]
        send.click(ask, inputs, outputs, api_name="ask")
        question.submit(ask, inputs, outputs, api_name=False)
        reset.click(clear, None, [chatbot, question], api_name="clear")
    return demo


__all__ = ["build_vlm_chat_app", "example_files"]
