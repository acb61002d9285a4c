"""A shop assistant that answers questions about a pictured product from catalogue facts (Chapter 12).

The model code is :mod:`mmbook.rag`: the tiny CLIP retrieves the pictured product (and, for "do you have
this in blue?", the blue one) and a template answers from the retrieved facts. Endpoint ``/ask``: picture
and question in; the answer and the retrieved facts (a table) out. Bad input is a ``gr.Error``.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmbook import rag
from mmbook.apps.common import checked, raw

FACT_COLUMNS = ["product", "price (dollars)", "stock", "used as"]


def build_shop_assistant_app(retriever: rag.Retriever | None = None, vlm: tuple[Any, Any] | None = None) -> gr.Blocks:
    """A picture, a question, the answer and the catalogue rows it came from (Chapter 12).

    By default the tiny CLIP over :func:`mmbook.rag.catalogue` retrieves and the tiny VLM recognises the
    product, both loaded now; a given ``retriever`` without ``vlm`` recognises with the CLIP alone.
    """
    if retriever is None:
        from mmbook import zoo

        retriever, vlm = rag.Retriever(*zoo.load("tiny-clip"), rag.catalogue()), zoo.load("tiny-vlm")
    answer = checked(rag.shop_answer)

    def ask(picture: Any, question: Any) -> tuple[str, list[list[Any]]]:
        reply, facts = answer(retriever, picture, question, vlm)
        return reply.text, [[p.name, p.price, p.stock, p.use] for p in facts]

    with gr.Blocks(title="Shop assistant") as demo:
        gr.Markdown("# Shop assistant\nShow a product, ask about its price, its stock, what it is for, or "
                    "another colour. Every answer comes from the catalogue rows shown below it.")  # fmt: skip
        with gr.Row():
            picture = raw(gr.Image(label="Product picture", type="filepath", image_mode=None, height=224))
            with gr.Column():
                question = gr.Textbox(label="Question", placeholder=rag.QUESTIONS["price"])
                send = gr.Button("Ask", variant="primary")
                reply = gr.Textbox(label="Answer")
        facts = gr.Dataframe(headers=FACT_COLUMNS, label="Retrieved catalogue rows", interactive=False)
        send.click(ask, [picture, question], [reply, facts], api_name="ask")
        question.submit(ask, [picture, question], [reply, facts], api_name=False)
    return demo


__all__ = ["build_shop_assistant_app"]
