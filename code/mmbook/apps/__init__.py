"""The book's Gradio apps: one builder per app, returning a ``gr.Blocks`` (Chapter 1 on).

The same builder serves the chapter (through :func:`mmbook.demos.show`), the tests (through
``gradio_client`` against a server on 127.0.0.1) and the launcher ``python -m mmbook.apps NAME``.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from mmbook.apps.assistant import build_assistant_app
from mmbook.apps.attention import build_attention_app
from mmbook.apps.digits import build_digits_app
from mmbook.apps.fusion import build_fusion_app
from mmbook.apps.hello import build_hello_app
from mmbook.apps.matching import build_matching_app
from mmbook.apps.monitoring import build_monitoring_app
from mmbook.apps.open_vocab import build_open_vocab_app
from mmbook.apps.pretrained import build_pretrained_app
from mmbook.apps.recommender import build_recommender_app
from mmbook.apps.robust import build_robust_app
from mmbook.apps.search import build_search_app
from mmbook.apps.shapes import build_shapes_app
from mmbook.apps.shop_assistant import build_shop_assistant_app
from mmbook.apps.textgen import build_textgen_app
from mmbook.apps.tour import build_tour_app
from mmbook.apps.vector_search import build_vector_search_app
from mmbook.apps.vlm_chat import build_vlm_chat_app

APPS: dict[str, Callable[[], gr.Blocks]] = {
    "hello": build_hello_app,
    "textgen": build_textgen_app,
    "digits": build_digits_app,
    "shapes": build_shapes_app,
    "attention": build_attention_app,
    "fusion": build_fusion_app,
    "matching": build_matching_app,
    "search": build_search_app,
    "pretrained": build_pretrained_app,
    "tour": build_tour_app,
    "assistant": build_assistant_app,
    "vlm-chat": build_vlm_chat_app,
    "vector-search": build_vector_search_app,
    "shop-assistant": build_shop_assistant_app,
    "recommender": build_recommender_app,
    "open-vocab": build_open_vocab_app,
    "monitoring": build_monitoring_app,
    "robust": build_robust_app,
}

__all__ = [
    "APPS",
    "build_assistant_app",
    "build_attention_app",
    "build_digits_app",
    "build_fusion_app",
    "build_hello_app",
    "build_matching_app",
    "build_monitoring_app",
    "build_open_vocab_app",
    "build_pretrained_app",
    "build_recommender_app",
    "build_robust_app",
    "build_search_app",
    "build_shapes_app",
    "build_shop_assistant_app",
    "build_textgen_app",
    "build_tour_app",
    "build_vector_search_app",
    "build_vlm_chat_app",
]
