"""Small Gradio apps, one per idea of Chapter 9: Interface, Blocks, components, State, streaming,
progress, validation, chat and concurrency.

Each builder returns an app that the chapter shows, the tests call through ``gradio_client`` and
``python -m mmbook.apps tour`` serves, all of them as tabs of one app (:func:`build_tour_app`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gradio as gr
import numpy as np

from mmbook.apps.common import checked, raw, whole_number
from mmbook.data import COLORS, SHAPE_KINDS, make_shapes
from mmbook.limits import MAX_PIXELS, MAX_SEED, MAX_TEXT_CHARS
from mmbook.sound import to_int16
from mmbook.viz import upscale_nearest

#: A pixel darker than this in every channel is background in the shapes world (backgrounds are 15–45).
DARK = 70
PALETTE = np.array(list(COLORS.values()), dtype=np.float32)


def _rgb(image: Any) -> np.ndarray:
    """An uploaded picture as uint8 H×W×3, or a ``gr.Error`` that says what is wrong."""
    if image is None:
        raise gr.Error("Please upload a picture first.")
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise gr.Error(f"Expected a colour picture; got an array of shape {array.shape}.")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise gr.Error(f"That picture has {array.shape[0] * array.shape[1]:,} pixels; the limit is {MAX_PIXELS:,}.")
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return array[..., :3]


def colour_shares(image: Any) -> dict[str, float]:
    """The share of each shapes-world colour among a picture's non-background pixels (Chapter 9).

    Each pixel brighter than :data:`DARK` in some channel takes the nearest colour of ``COLORS``.
    """
    pixels = _rgb(image).reshape(-1, 3).astype(np.float32)
    lit = pixels[pixels.max(axis=1) > DARK]
    if len(lit) == 0:
        raise gr.Error("The picture is dark all over: there is no coloured shape to measure.")
    nearest = ((lit[:, None, :] - PALETTE[None]) ** 2).sum(-1).argmin(1)
    counts = np.bincount(nearest, minlength=len(COLORS)) / len(lit)
    return {name: float(share) for name, share in zip(COLORS, counts, strict=True)}


def build_interface_demo() -> gr.Interface:
    """``gr.Interface``: one function, its inputs and outputs declared, the page generated (Chapter 9)."""
    return gr.Interface(
        fn=colour_shares,
        inputs=raw(gr.Image(type="numpy", label="Picture", image_mode="RGB")),
        outputs=gr.Label(num_top_classes=3, label="Colours"),
        title="Which colours are in this picture?",
        description="Every bright pixel takes the nearest of the shapes world's six colours.",
        flagging_mode="never",
        api_name="colours",
    )


@checked
def scene(seed: Any) -> np.ndarray:
    """The picture of ``make_shapes(1, seed=seed)``, enlarged to 256 pixels (Chapter 9)."""
    return upscale_nearest(make_shapes(1, seed=whole_number(seed, "seed", 0, MAX_SEED)).images[0], 256)


def build_blocks_demo() -> gr.Blocks:
    """``gr.Blocks``: layout, and events chained with ``.then`` (Chapter 9)."""
    with gr.Blocks(title="Blocks: layout and events") as demo:
        gr.Markdown("## A scene, then its colours\nThe button draws a scene; `.then` measures its colours.")
        with gr.Row():
            with gr.Column(scale=1):
                seed = raw(gr.Number(value=7, label=f"Seed (0 to {MAX_SEED:,})", precision=0))
                button = gr.Button("Draw", variant="primary")
            picture = raw(gr.Image(label="Scene", type="numpy", height=256, width=256, format="png", scale=1))
            label = gr.Label(num_top_classes=3, label="Colours", scale=1)
        button.click(scene, seed, picture, api_name="scene").then(colour_shares, picture, label, api_name="colours")
        picture.upload(colour_shares, picture, label, api_name=False)
    return demo


def _boxes(objects: list[dict[str, Any]], scale: float) -> list[tuple[tuple[int, int, int, int], str]]:
    boxes = []
    for o in objects:
        r = o["radius"] * scale
        x, y = o["x"] * scale, o["y"] * scale
        boxes.append(((int(x - r), int(y - r), int(x + r), int(y + r)), f"{o['color']} {o['shape']}"))
    return boxes


def _waveform(audio: np.ndarray, rate: int) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 2.2))
    ax = figure.subplots()
    ax.plot(np.arange(len(audio)) / rate, audio, lw=0.5)
    ax.set_xlabel("seconds")
    ax.set_ylabel("amplitude")
    ax.set_title("the scene's sound: one tone per shape")
    figure.tight_layout()
    return figure


@checked
def every_modality(seed: Any) -> tuple[Any, ...]:
    """One scene through one output component per kind of data (Chapter 9)."""
    number = whole_number(seed, "seed", 0, MAX_SEED)
    data = make_shapes(1, seed=number)
    sample = data[0]
    picture = upscale_nearest(sample["image"], 256)
    kinds = [o["shape"] for o in sample["attributes"]]
    counts = {kind: kinds.count(kind) / len(kinds) for kind in SHAPE_KINDS if kind in kinds}
    rows = [[o["shape"], o["color"], o["size"], o["position"]] for o in sample["attributes"]]
    neighbours = [make_shapes(1, seed=number + k) for k in range(1, 5)]
    gallery = [(upscale_nearest(n.images[0], 128), n.captions[0]) for n in neighbours]
    return (
        picture,
        (picture, _boxes(sample["attributes"], 256 / data.image_size)),
        sample["caption"],
        counts,
        (data.sample_rate, to_int16(sample["audio"])),
        rows,
        _waveform(sample["audio"], data.sample_rate),
        gallery,
    )


def build_components_demo() -> gr.Blocks:
    """Output components for pictures, regions, text, labels, sound, tables, plots and galleries (Chapter 9)."""
    with gr.Blocks(title="Components for every modality") as demo:
        gr.Markdown("## One scene, eight components")
        with gr.Row():
            seed = raw(gr.Number(value=3, label=f"Seed (0 to {MAX_SEED:,})", precision=0))
            button = gr.Button("Show", variant="primary")
        with gr.Row():
            image = gr.Image(label="gr.Image", format="png", height=256)
            annotated = gr.AnnotatedImage(label="gr.AnnotatedImage", height=256)
            with gr.Column():
                caption = gr.Textbox(label="gr.Textbox", lines=3)
                label = gr.Label(label="gr.Label (share of each shape)")
        with gr.Row():
            audio = gr.Audio(label="gr.Audio", type="numpy", format="wav")
            table = gr.Dataframe(headers=["shape", "color", "size", "position"], label="gr.Dataframe",
                                 interactive=False)
        with gr.Row():
            plot = gr.Plot(label="gr.Plot (matplotlib)")
            gallery = gr.Gallery(label="gr.Gallery (the next four seeds)", columns=4, format="png", height=200)
        outputs = [image, annotated, caption, label, audio, table, plot, gallery]
        button.click(every_modality, seed, outputs, api_name="show")
    return demo


@checked
def collect(seed: Any, collected: list[int] | None) -> tuple[list[int], list[tuple[np.ndarray, str]], str]:
    """Add the scene of ``seed`` to this session's collection, kept in ``gr.State`` (Chapter 9)."""
    number = whole_number(seed, "seed", 0, MAX_SEED)
    collected = [*(collected or []), number]
    data = make_shapes(1, seed=number)
    pictures = [(upscale_nearest(make_shapes(1, seed=s).images[0], 128), f"seed {s}") for s in collected]
    return collected, pictures, f"{len(collected)} scene(s) in this session; the last: {data.captions[0]}"


def build_state_demo() -> gr.Blocks:
    """``gr.State``: a value kept per browser session, here a list of seeds (Chapter 9)."""
    with gr.Blocks(title="State") as demo:
        gr.Markdown("## A collection per visitor\nEach visitor has their own list; a reload empties it.")
        collected = gr.State([])
        with gr.Row():
            seed = raw(gr.Number(value=1, label="Seed", precision=0))
            add = gr.Button("Add to my collection", variant="primary")
            clear = gr.Button("Clear")
        status = gr.Textbox(label="Status")
        pictures = gr.Gallery(label="My collection", columns=6, format="png", height=180)
        add.click(collect, [seed, collected], [collected, pictures, status], api_name="collect")
        clear.click(lambda: ([], [], "0 scene(s) in this session"), None, [collected, pictures, status],
                    api_name="clear")
    return demo


def stream_words(text: Any, seconds_per_word: float = 0.05) -> Iterator[str]:
    """Yield ``text`` word by word: a generator makes a streaming endpoint (Chapter 9)."""
    words = text.split() if isinstance(text, str) else []
    if not words:
        raise gr.Error("Please type something to stream.")
    if len(text) > MAX_TEXT_CHARS:
        raise gr.Error(f"The text has {len(text):,} characters; the limit is {MAX_TEXT_CHARS}.")
    shown = []
    for word in words:
        shown.append(word)
        time.sleep(seconds_per_word)
        yield " ".join(shown)


@checked
def count_colours(n_scenes: Any, progress: gr.Progress = gr.Progress()) -> dict[str, float]:  # noqa: B008
    """Measure the colours of ``n_scenes`` scenes one by one, reporting progress (Chapter 9)."""
    n = whole_number(n_scenes, "number of scenes", 1, 500)
    totals = dict.fromkeys(COLORS, 0.0)
    data = make_shapes(n, seed=0)
    for image in progress.tqdm(data.images, desc="measuring scenes"):
        for name, share in colour_shares(image).items():
            totals[name] += share / n
    return totals


def build_streaming_demo() -> gr.Blocks:
    """A generator streams partial results; ``gr.Progress`` shows a progress bar (Chapter 9)."""
    with gr.Blocks(title="Streaming and progress") as demo:
        gr.Markdown("## Streaming and progress")
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(label="Text", value="a red circle in the center and a blue square at the top")
                stream = gr.Button("Stream it")
                streamed = gr.Textbox(label="Streamed")
            with gr.Column():
                n = raw(gr.Slider(1, 500, value=200, step=1, label="Scenes"))
                run = gr.Button("Count colours")
                totals = gr.Label(label="Average colour shares", num_top_classes=6)
        stream.click(stream_words, text, streamed, api_name="stream")
        run.click(count_colours, n, totals, api_name="count")
    return demo


@checked
def thumbnail(image: Any, size: Any) -> np.ndarray:
    """Resize a picture to ``size`` pixels, with ``gr.Error`` for bad input and ``gr.Warning`` for blur."""
    from PIL import Image

    array = _rgb(image)
    side = whole_number(size, "size", 8, 1024)
    if side > 4 * max(array.shape[:2]):
        gr.Warning(f"Enlarging a {array.shape[1]}×{array.shape[0]} picture to {side} pixels makes it blurry.")
    return np.asarray(Image.fromarray(array).resize((side, side), Image.Resampling.LANCZOS))


def build_validation_demo() -> gr.Blocks:
    """``gr.Error`` stops a request with a message; ``gr.Warning`` lets it finish with one (Chapter 9)."""
    with gr.Blocks(title="Errors and warnings") as demo:
        gr.Markdown("## Errors and warnings\nNo picture, or a huge one, is an error; enlarging a small one, a warning.")
        with gr.Row():
            picture = raw(gr.Image(label="Picture", type="numpy"))
            size = raw(gr.Number(value=64, label="Size (8 to 1,024 pixels)", precision=0))
        button = gr.Button("Resize", variant="primary")
        out = gr.Image(label="Resized", format="png")
        button.click(thumbnail, [picture, size], out, api_name="resize")
    return demo


def shapes_chat(message: dict[str, Any], history: list[Any]) -> str:
    """A rule-based assistant for ``gr.ChatInterface(multimodal=True)`` (Chapter 9).

    ``message`` is ``{"text": ..., "files": [...]}``; it answers questions about the colours of the
    last picture sent in this conversation.
    """
    from PIL import Image

    if not isinstance(message, dict):
        return "Send me a picture (the clip icon) and ask which colours it has."
    files = list(message.get("files") or [])
    for turn in reversed(history or []):
        if files:
            break
        content = turn.get("content") if isinstance(turn, dict) else None
        items = content if isinstance(content, list) else [content]
        for item in items:
            if isinstance(item, dict) and item.get("type") == "file":
                files = [item["file"]["path"]]
            elif isinstance(item, dict) and "path" in item:
                files = [item["path"]]
    text = str(message.get("text") or "").strip().lower()
    if not files:
        return "Send me a picture (the clip icon) and ask which colours it has."
    path = files[-1] if isinstance(files[-1], str) else files[-1].get("path")
    try:
        shares = colour_shares(np.asarray(Image.open(path).convert("RGB")))
    except gr.Error as error:
        return str(error.message)
    except OSError:
        return "I could not read that file as a picture."
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])
    present = [f"{name} ({share:.0%})" for name, share in ranked if share >= 0.05]
    if "most" in text or "main" in text:
        return f"Mostly {ranked[0][0]}: {ranked[0][1]:.0%} of the coloured pixels."
    return "I see " + ", ".join(present) + "." if present else "I see no colour above 5 % of the pixels."


def build_chat_demo() -> gr.ChatInterface:
    """``gr.ChatInterface(multimodal=True)``: text and files in one box, a conversation out (Chapter 9)."""
    textbox = gr.MultimodalTextbox(file_types=["image"], file_count="single",
                                   placeholder="Attach a picture and ask: which colours?")
    decode = textbox.preprocess
    # An API call may send no message at all; treat it as an empty one so the reply can say what to send.
    textbox.preprocess = lambda payload: decode(textbox.data_model(text="", files=[]) if payload is None else payload)
    return gr.ChatInterface(shapes_chat, multimodal=True, title="Ask about a picture's colours", textbox=textbox,
                            api_name="chat")


def build_concurrency_demo(limit: int = 1, seconds: float = 0.3) -> gr.Blocks:
    """An endpoint that takes ``seconds`` and runs at most ``limit`` requests at once (Chapter 9)."""

    def slow(x: float) -> float:
        time.sleep(seconds)
        return x

    with gr.Blocks(title="Concurrency") as demo:
        x = gr.Number(label="x")
        y = gr.Number(label="y")
        gr.Button("Run").click(slow, x, y, api_name="slow", concurrency_limit=limit)
    return demo


def build_tour_app() -> gr.Blocks:
    """Every demo of Chapter 9 as one tabbed app (``python -m mmbook.apps tour``)."""
    demos = [build_interface_demo(), build_blocks_demo(), build_components_demo(), build_state_demo(),
             build_streaming_demo(), build_validation_demo(), build_chat_demo()]
    names = ["Interface", "Blocks", "Components", "State", "Streaming", "Errors", "Chat"]
    return gr.TabbedInterface(demos, names, title="A tour of Gradio")
