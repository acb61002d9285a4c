"""Helpers for the book's pages: glued values and the package's own source on the page (Chapter 1).

``glue`` stores a value computed by a cell so that the prose can cite it ({glue:text}`name`) instead of
a number typed by hand; outside a book build (Colab, plain Jupyter) it simply returns the value.
``show_source`` displays the code of an ``mmbook`` function or class, so the code a reader reads is the
code the package runs. :data:`CHAPTER_CODE` declares, for each chapter, the lesson code it introduces and
the harness it runs; a test checks that every public name of the lesson code is shown in the chapter or
listed as harness.
``claim`` checks a sentence about a measured outcome (a training run, a timing): strict in the book's own
runs (``MMBOOK_STRICT=1``), a visible note for a reader whose rerun differs.
"""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SOLUTION_BLOCK = re.compile(r"\n*^:::\{solution\}.*?^:::[ \t]*$", flags=re.DOTALL | re.MULTILINE)
SOLUTION_START = re.compile(r"\A::::\{solution-start\}")
SOLUTION_END = re.compile(r"^::::\{solution-end\}\n::::\s*\Z", flags=re.MULTILINE)


def glue(name: str, value: Any, display: bool = False) -> Any:
    """Glue ``value`` under ``name`` for the prose when myst-nb is present; return it (Chapter 1).

    NumPy scalars (what pandas and NumPy reductions return) become Python numbers first: a format such as
    ``:.1f`` in the prose is applied to the glued ``repr``, and ``np.float64(1.5)`` does not parse.
    """
    if isinstance(value, np.generic):
        value = value.item()
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return value
    myst_glue(name, value, display=display)
    return value


class ClaimError(AssertionError):
    """A claim of the prose that this run does not reproduce, raised under ``MMBOOK_STRICT=1`` (Chapter 1)."""


def claim(condition: Any, message: str) -> None:
    """Check a claim of the prose about a measured outcome (every chapter, from Chapter 1).

    The prose describes the book's run. The book's CI and build set ``MMBOOK_STRICT=1`` (the Makefile does):
    there a claim that fails raises :class:`ClaimError`. Elsewhere (Colab, a reader's laptop) a model
    retrained on other hardware may differ a little, so a failed claim prints a visible note and the chapter
    goes on. Derivations, shapes and equivalences with a library stay plain ``assert`` statements. It
    returns nothing, so a claim on a cell's last line adds no output.
    """
    if bool(condition):
        return
    if os.environ.get("MMBOOK_STRICT", "").strip().lower() in {"1", "true", "yes", "on"}:
        raise ClaimError(message)
    print(
        f"Note: this run differs from the book's: {message.rstrip('.')}. The text describes the book's run; "
        "yours trained or timed a little differently (other hardware, other library versions).",
        flush=True,
    )


def show_source(obj: Any) -> None:
    """Display the source code of ``obj`` with syntax highlighting (Chapter 1)."""
    from IPython.display import Markdown, display

    module = inspect.getmodule(obj)
    origin = f"# from {module.__name__}\n" if module else ""
    display(Markdown(f"```python\n{origin}{inspect.getsource(obj).rstrip()}\n```"))


def student_edition(source: str | Path, target: str | Path) -> int:
    """Write a copy of the notebook ``source`` without its solutions; return how many were cut.

    Used by teachers (see "For teachers"). A solution is either a ``:::{solution}`` ... ``:::`` block inside
    a markdown cell, or, when it runs code, the cells from one that begins with ``::::{solution-start}``
    through the one that ends with ``::::{solution-end}`` (sphinx-exercise's gated form), code cells
    between them included.
    """
    import nbformat

    nb = nbformat.read(source, as_version=4)
    removed, kept, inside = 0, [], False
    for cell in nb.cells:
        markdown = cell.cell_type == "markdown"
        if markdown and SOLUTION_START.match(cell.source):
            if inside:
                raise ValueError(f"{source}: a solution starts inside another one")
            inside = True
        if not inside:
            if markdown:
                cell.source, count = SOLUTION_BLOCK.subn("", cell.source)
                removed += count
            kept.append(cell)
        elif markdown and SOLUTION_END.search(cell.source):
            inside, removed = False, removed + 1
    if inside:
        raise ValueError(f"{source}: a solution-start has no solution-end")
    nb.cells = kept
    nbformat.write(nb, target)
    return removed


@dataclass(frozen=True)
class ChapterCode:
    """The package code one chapter introduces and the code it merely runs (Chapter 1, for every chapter).

    ``lesson``: modules (``"mmbook.fusion"``) or single names (``"mmbook.losses:clip_loss"``) whose public
    functions and classes the chapter teaches: each is displayed with :func:`show_source` in the chapter,
    or listed in ``harness_names``. ``harness``: the modules of experiment machinery (task data, benchmark
    runners, demo models, apps) the chapter uses without teaching them. ``harness_names``: public names of
    the lesson modules that are plumbing (``"module:name"``), used but not displayed.
    """

    lesson: tuple[str, ...]
    harness: tuple[str, ...] = ()
    harness_names: tuple[str, ...] = ()


#: What each chapter teaches and what it runs, by notebook name (``code/README.md`` renders it as a table).
CHAPTER_CODE: dict[str, ChapterCode] = {
    "01_background": ChapterCode(
        lesson=("mmbook.baselines:SoftmaxRegression", "mmbook.baselines:softmax_regression_grad",
                "mmbook.baselines:softmax", "mmbook.baselines:late_fusion", "mmbook.baselines:image_features",
                "mmbook.baselines:DigitsWithHints"),
        harness=("mmbook.data", "mmbook.apps.hello", "mmbook.apps.textgen", "mmbook.apps.digits", "mmbook.demos",
                 "mmbook.viz"),
        harness_names=("mmbook.baselines:DigitsWithHints", "mmbook.baselines:image_features",
                       "mmbook.baselines:late_fusion", "mmbook.baselines:softmax"),
    ),
    "02_core_concepts": ChapterCode(
        lesson=("mmbook.baselines:thumbnail",),
        harness=("mmbook.data", "mmbook.baselines", "mmbook.losses", "mmbook.sound", "mmbook.apps.shapes",
                 "mmbook.viz", "mmbook.demos"),
    ),
    "03_encoders": ChapterCode(
        lesson=("mmbook.encoders", "mmbook.bpe"),
        harness=("mmbook.data", "mmbook.env", "mmbook.hub"),
        harness_names=("mmbook.encoders:count_parameters", "mmbook.bpe:library_merges",
                       "mmbook.bpe:train_library_bpe"),
    ),
    "04_attention": ChapterCode(
        lesson=("mmbook.attention", "mmbook.shape_finder"),
        harness=("mmbook.baselines", "mmbook.timing", "mmbook.env", "mmbook.apps.attention", "mmbook.viz"),
        harness_names=("mmbook.shape_finder:FinderSettings", "mmbook.shape_finder:finder_examples",
                       "mmbook.shape_finder:scene", "mmbook.shape_finder:shape_finder",
                       "mmbook.shape_finder:word_ids"),
    ),
    "05_fusion": ChapterCode(
        lesson=("mmbook.fusion", "mmbook.fusion_classifier"),
        harness=("mmbook.experiments.fusion_bench", "mmbook.apps.fusion"),
        harness_names=("mmbook.fusion_classifier:predict",),
    ),
    "06_contrastive": ChapterCode(
        lesson=("mmbook.clip", "mmbook.contrastive:train_clip", "mmbook.losses:clip_loss", "mmbook.losses:info_nce",
                "mmbook.metrics:recall_at_k", "mmbook.metrics:mean_average_precision",
                "mmbook.metrics:eta_squared"),
        harness=("mmbook.contrastive", "mmbook.baselines", "mmbook.env", "mmbook.zoo", "mmbook.hub", "mmbook.search",
                 "mmbook.apps.search"),
    ),
    "07_matching": ChapterCode(
        lesson=("mmbook.matching", "mmbook.data.pairs", "mmbook.losses:bce_with_logits", "mmbook.losses:bce_grad",
                "mmbook.metrics:binary_metrics", "mmbook.metrics:roc_curve", "mmbook.metrics:roc_auc",
                "mmbook.metrics:auc_trapezoid", "mmbook.metrics:best_threshold"),
        harness=("mmbook.experiments.book_matcher", "mmbook.contrastive", "mmbook.timing", "mmbook.apps.matching",
                 "mmbook.zoo"),
        harness_names=("mmbook.matching:History", "mmbook.matching:MatchOutput", "mmbook.matching:evaluate",
                       "mmbook.matching:match_probabilities", "mmbook.data.pairs:Pairs",
                       "mmbook.data.pairs:PairTensors", "mmbook.data.pairs:encode_pairs",
                       "mmbook.data.pairs:pixels", "mmbook.data.pairs:tokenize"),
    ),
    "08_pretrained": ChapterCode(
        lesson=("mmbook.inference:answer", "mmbook.inference:caption", "mmbook.inference:transcribe",
                "mmbook.inference:draw", "mmbook.tiny_vilt:train_tiny_vilt",
                "mmbook.retrieval_captioner:RetrievalCaptioner"),
        harness=("mmbook.inference", "mmbook.inputs", "mmbook.sound", "mmbook.tiny_vilt", "mmbook.retrieval_captioner",
                 "mmbook.hub", "mmbook.timing", "mmbook.env", "mmbook.pretrained", "mmbook.apps.pretrained"),
    ),
    "09_gradio": ChapterCode(
        lesson=("mmbook.apps.tour",),
        harness=("mmbook.demos", "mmbook.loadtest", "mmbook.apps.spaces"),
        harness_names=("mmbook.apps.tour:build_chat_demo", "mmbook.apps.tour:build_components_demo",
                       "mmbook.apps.tour:build_concurrency_demo", "mmbook.apps.tour:build_state_demo",
                       "mmbook.apps.tour:build_streaming_demo", "mmbook.apps.tour:build_tour_app",
                       "mmbook.apps.tour:build_validation_demo", "mmbook.apps.tour:scene",
                       "mmbook.apps.tour:thumbnail"),
    ),
    "10_project_app": ChapterCode(
        lesson=("mmbook.tone_reader:ToneReader", "mmbook.tone_reader:slot_features",
                "mmbook.apps.assistant:load_assistant_models", "mmbook.router:route",
                "mmbook.loadtest:simulate_closed_loop"),
        harness=("mmbook.tone_reader", "mmbook.apps.assistant", "mmbook.router", "mmbook.loadtest", "mmbook.timing",
                 "mmbook.apps.spaces", "mmbook.limits", "mmbook.sound", "mmbook.demos"),
    ),
    "11_multimodal_llm": ChapterCode(
        lesson=("mmbook.lm", "mmbook.vlm"),
        harness=("mmbook.vlm_train", "mmbook.vlm_eval", "mmbook.tiny_vlm", "mmbook.data.instruct", "mmbook.chat",
                 "mmbook.apps.vlm_chat", "mmbook.zoo", "mmbook.tiny_vilt", "mmbook.viz", "mmbook.demos"),
        harness_names=("mmbook.lm:check_text", "mmbook.lm:LMConfig", "mmbook.lm:attention_bias",
                       "mmbook.lm:llama_config", "mmbook.lm:lm_config_from_llama", "mmbook.lm:body_state_dict",
                       "mmbook.lm:to_llama", "mmbook.lm:from_llama", "mmbook.vlm:VLMOutput", "mmbook.vlm:expand_image",
                       "mmbook.vlm:prompt_text", "mmbook.vlm:llava_config", "mmbook.vlm:to_transformers",
                       "mmbook.vlm:from_transformers", "mmbook.vlm:new_language_model", "mmbook.vlm:check_picture",
                       "mmbook.vlm:stream_answer", "mmbook.vlm:ask"),
    ),
    "12_applications": ChapterCode(
        lesson=("mmbook.vector_index", "mmbook.rag", "mmbook.recommend", "mmbook.calibration", "mmbook.segment",
                "mmbook.monitoring", "mmbook.apps.open_vocab:classify"),
        harness=("mmbook.apps.vector_search", "mmbook.apps.shop_assistant", "mmbook.apps.recommender",
                 "mmbook.apps.open_vocab", "mmbook.apps.monitoring", "mmbook.data", "mmbook.zoo", "mmbook.contrastive",
                 "mmbook.demos", "mmbook.viz", "mmbook.chat", "mmbook.lm", "mmbook.experiments.clip_bench"),
        harness_names=("mmbook.vector_index:unit_rows", "mmbook.vector_index:synthetic",
                       "mmbook.vector_index:default_nlist", "mmbook.vector_index:set_effort",
                       "mmbook.vector_index:recall_at_k", "mmbook.vector_index:index_bytes",
                       "mmbook.vector_index:queries_per_second", "mmbook.vector_index:effort_curve",
                       "mmbook.vector_index:shipped_benchmark", "mmbook.rag:Product", "mmbook.rag:catalogue",
                       "mmbook.rag:question_kind", "mmbook.rag:Answer", "mmbook.rag:truth",
                       "mmbook.rag:blind_answer", "mmbook.rag:rag_prompt", "mmbook.rag:eval_set",
                       "mmbook.rag:vlm_recognise", "mmbook.rag:evaluate", "mmbook.rag:shop_answer",
                       "mmbook.recommend:Settings", "mmbook.recommend:Interactions", "mmbook.recommend:embeddings",
                       "mmbook.recommend:popularity_scores", "mmbook.recommend:random_scores",
                       "mmbook.recommend:standardise", "mmbook.recommend:relevance", "mmbook.recommend:masked",
                       "mmbook.recommend:top_k", "mmbook.recommend:ndcg", "mmbook.recommend:evaluate",
                       "mmbook.recommend:nearest", "mmbook.recommend:Recommender", "mmbook.calibration:Reliability",
                       "mmbook.calibration:RiskCoverage", "mmbook.segment:centre_box",
                       "mmbook.segment:colour_threshold", "mmbook.segment:cell_ceiling"),
    ),
    "13_efficiency_scale": ChapterCode(
        lesson=("mmbook.roofline", "mmbook.export", "mmbook.timing:interleaved", "mmbook.quantize", "mmbook.prune",
                "mmbook.distill", "mmbook.lora", "mmbook.distributed",
                "mmbook.serving:build_gradio_api", "mmbook.serving:build_fastapi_app",
                "mmbook.serving:best_match_batch", "mmbook.serving:batch_throughput", "mmbook.serving:Stopwatch"),
        harness=("mmbook.experiments.clip_bench", "mmbook.experiments.compress_bench", "mmbook.experiments.compression",
                 "mmbook.serving", "mmbook.loadtest", "mmbook.timing", "mmbook.vlm_eval", "mmbook.vlm", "mmbook.zoo",
                 "mmbook.contrastive", "mmbook.env", "mmbook.viz"),
        harness_names=("mmbook.roofline:Traffic", "mmbook.export:run_onnx", "mmbook.export:first_call_seconds",
                       "mmbook.prune:named_linears", "mmbook.prune:weight_sparsity",
                       "mmbook.prune:mlp_blocks", "mmbook.prune:mask_mlp_channels",
                       "mmbook.distill:TeacherEmbeddings",
                       "mmbook.distributed:gather_without_gradient", "mmbook.distributed:full_batch_gradients",
                       "mmbook.distributed:main"),
    ),
    "14_trends_challenges": ChapterCode(
        lesson=("mmbook.scaling_laws", "mmbook.generalisation:binding_items",
                "mmbook.generalisation:difference_interval",
                "mmbook.spurious:group_pictures", "mmbook.spurious:correlated_counts", "mmbook.spurious:group_weights",
                "mmbook.spurious:train_shape_classifier", "mmbook.corrupt", "mmbook.relevance",
                "mmbook.membership:pairwise_auc", "mmbook.experiments.hallucination:negative_turns",
                "mmbook.experiments.hallucination:grounded_answers"),
        harness=("mmbook.experiments.scaling", "mmbook.generalisation", "mmbook.spurious",
                 "mmbook.experiments.book_matcher", "mmbook.experiments.robustness", "mmbook.apps.robust",
                 "mmbook.membership", "mmbook.experiments.hallucination", "mmbook.vlm_eval", "mmbook.vlm_train",
                 "mmbook.roofline", "mmbook.distill", "mmbook.lm", "mmbook.hub", "mmbook.zoo", "mmbook.contrastive",
                 "mmbook.demos", "mmbook.viz"),
        harness_names=("mmbook.corrupt:gaussian_blur", "mmbook.corrupt:rgb_to_hsv", "mmbook.corrupt:hsv_to_rgb",
                       "mmbook.corrupt:occluder_side", "mmbook.corrupt:Corruption", "mmbook.corrupt:corrupt",
                       "mmbook.relevance:eager_attention", "mmbook.relevance:image_text_scores",
                       "mmbook.relevance:relevance_maps", "mmbook.relevance:truth_masks",
                       "mmbook.relevance:cell_points"),
    ),
}
