"""The book's one loading policy for pretrained models, and its catalogue (Chapter 1; Chapter 8 grows it).

Online, a model comes from the Hugging Face Hub under its id. Offline, the *same* ``from_pretrained`` /
``pipeline`` call receives the folder of the book's own small stand-in, trained on the book's data and
saved with ``save_pretrained`` (see :mod:`mmbook.zoo`, :mod:`mmbook.tiny_vilt`, :mod:`mmbook.retrieval_captioner`,
:mod:`mmbook.random_checkpoints` and :mod:`mmbook.tone_reader`). Where no honest small stand-in exists
(captioning, speech recognition, text-to-image), offline loading stops with a message that says so and
what the book shows instead. Every call prints which path ran, so a reader never mistakes a
stand-in for the real model.

With ``MMBOOK_SIMULATE_HUB=1`` the online path runs with no network: every hub id resolves to a small
checkpoint of the same classes with random weights (:mod:`mmbook.simulated_hub`), and each resolve says so.
Models are placed on :func:`mmbook.env.device` (a GPU when there is one).

No revision is pinned: the hub's commit hashes could not be looked up while this catalogue was written
(without network), and a hash typed from memory would be worse than none. Pin one yourself with
``HubModel.revision`` (``dataclasses.replace``) once you have checked it on the hub.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmbook.env import device as best_device
from mmbook.env import is_offline, is_simulated_hub

#: Bytes per parameter of float32 weights: the approximate download is 4 bytes times the parameter count.
FLOAT32_BYTES = 4


@dataclass(frozen=True)
class HubModel:
    """One entry of the catalogue: the real checkpoint, what it is, and the book's offline stand-in.

    ``parameters`` were counted by building each architecture from its configuration (seed fact-check,
    and Chapter 8 recounts them); ``None`` means not counted. ``licence`` is the licence tag of the
    model's card on the hub, ``None`` where the card gives none (CLIP's): read the card before you ship.
    ``classes`` names the model and processor classes that load it (in ``transformers``, or ``diffusers``
    for ``library="diffusers"``).
    """

    name: str
    hub_id: str
    task: str
    standin: Callable[[], Path] | None
    standin_note: str
    revision: str | None = None
    parameters: int | None = None
    licence: str | None = None
    architecture: str = ""
    training_data: str = ""
    classes: tuple[str, str] | None = None
    library: str = "transformers"
    needs_gpu: bool = False

    @property
    def download_mb(self) -> float | None:
        """Approximate size of the float32 weights in MB (4 bytes per parameter), or ``None``."""
        return None if self.parameters is None else self.parameters * FLOAT32_BYTES / 1e6


@dataclass(frozen=True)
class Resolved:
    """Where a model is loaded from: a hub id (online), a local folder (offline or given), or the folder of
    a simulated checkpoint (online with ``MMBOOK_SIMULATE_HUB=1``: ``simulated``)."""

    model: HubModel
    source: str
    online: bool
    simulated: bool = False

    @property
    def kwargs(self) -> dict[str, Any]:
        real = self.online and not self.simulated
        return {"revision": self.model.revision} if real and self.model.revision else {}


def _tiny_gpt2() -> Path:
    from mmbook.zoo import tiny_gpt2_path

    return tiny_gpt2_path()


def _tiny_clip() -> Path:
    from mmbook.zoo import tiny_clip_path

    return tiny_clip_path()


def _tiny_vilt() -> Path:
    from mmbook.tiny_vilt import tiny_vilt_path

    return tiny_vilt_path()


def _tiny_vlm() -> Path:
    from mmbook.zoo import tiny_vlm_path

    return tiny_vlm_path()


CATALOGUE: dict[str, HubModel] = {
    "gpt2": HubModel(
        name="gpt2",
        hub_id="openai-community/gpt2",
        task="text-generation",
        standin=_tiny_gpt2,
        standin_note="a 2-layer GPT-2 the book trains in seconds on shapes-world captions; "
        "it continues captions, nothing more",
        parameters=124_439_808,
        licence="MIT",
        architecture="decoder-only Transformer (12 layers, width 768, 1,024-token context) over byte-level BPE tokens",
        training_data="WebText: text of web pages linked from Reddit",
        classes=("GPT2LMHeadModel", "AutoTokenizer"),
    ),
    "clip": HubModel(
        name="clip",
        hub_id="openai/clip-vit-base-patch32",
        task="zero-shot-image-classification",
        standin=_tiny_clip,
        standin_note="a tiny CLIP the book trains in about a minute on shapes-world pairs; it knows "
        "colours, five shapes and nine positions, and only the words of its captions",
        parameters=151_277_313,
        architecture="dual encoder: a ViT-B/32 image Transformer and a 12-layer text Transformer, each "
        "followed by a linear projection into one embedding space",
        training_data="400 million image-text pairs from the web, contrastive loss",
        classes=("CLIPModel", "CLIPProcessor"),
    ),
    "blip": HubModel(
        name="blip",
        hub_id="Salesforce/blip-image-captioning-base",
        task="image-text-to-text",
        standin=None,
        standin_note="no stand-in generates captions; offline the book shows a retrieval caption "
        "(the caption of the nearest shapes-world picture under the tiny CLIP), labelled as such",
        parameters=223_971_644,
        licence="BSD-3-Clause",
        architecture="image encoder (ViT-B/16 at 384 pixels) and a BERT-sized text decoder that "
        "cross-attends to the image patches and writes the caption token by token",
        training_data="web image-text pairs cleaned by BLIP's own captioner and filter (CapFilt), "
        "then fine-tuned on COCO Captions",
        classes=("BlipForConditionalGeneration", "BlipProcessor"),
    ),
    "vilt": HubModel(
        name="vilt",
        hub_id="dandelin/vilt-b32-finetuned-vqa",
        task="visual-question-answering",
        standin=_tiny_vilt,
        standin_note="a 2-layer ViLT the book trains in about 20 seconds on shapes-world questions; it "
        "answers them with the one-word answers of the shapes world, and its accuracy per question type "
        "is measured",
        parameters=117_588_537,
        licence="Apache-2.0",
        architecture="single-stream Transformer (ViT-B/32 sized): word embeddings and 32-pixel patch "
        "embeddings in one sequence, a classifier over 3,129 answers on the pooled first token",
        training_data="pre-trained on GCC, SBU, COCO and Visual Genome (image-text matching, masked "
        "words), fine-tuned on VQAv2",
        classes=("ViltForQuestionAnswering", "ViltProcessor"),
    ),
    "smolvlm": HubModel(
        name="smolvlm",
        hub_id="HuggingFaceTB/SmolVLM-256M-Instruct",
        task="image-text-to-text",
        standin=_tiny_vlm,
        standin_note="the book's tiny LLaVA-style VLM (Chapter 11), trained in about a minute on shapes-world "
        "pictures and conversations; it answers shapes-world questions in shapes-world words and is not a "
        "general vision-language model",
        # parameters not counted: its config cannot be read offline, and SmolVLMConfig()'s defaults describe
        # a larger model (a 1,152-wide vision tower), not this checkpoint
        licence="Apache-2.0",
        architecture="vision-language model: a SigLIP image encoder whose patch features are pixel-shuffled "
        "and projected into image tokens that a small SmolLM2 decoder reads with the text (the Idefics3 design)",
        training_data="image-text instruction data (question answering, captioning, documents, charts); "
        "its model card lists the datasets",
        classes=("AutoModelForImageTextToText", "AutoProcessor"),
    ),
    "whisper": HubModel(
        name="whisper",
        hub_id="openai/whisper-tiny",
        task="automatic-speech-recognition",
        standin=None,
        standin_note="no stand-in recognises speech; offline the book shows what Whisper's processor "
        "makes of a sound (the log-mel spectrogram) and says that no speech model ran",
        parameters=37_760_640,
        licence="Apache-2.0",
        architecture="encoder-decoder Transformer (4 + 4 layers, width 384) over an 80-band log-mel "
        "spectrogram of a 30-second window",
        training_data="680,000 hours of weakly supervised audio with transcripts from the web",
        classes=("WhisperForConditionalGeneration", "WhisperProcessor"),
    ),
    "stable-diffusion": HubModel(
        name="stable-diffusion",
        hub_id="stable-diffusion-v1-5/stable-diffusion-v1-5",
        task="text-to-image",
        standin=None,
        standin_note="no stand-in draws pictures; it needs the network, a CUDA GPU and diffusers",
        licence="CreativeML OpenRAIL-M",
        architecture="latent diffusion: a U-Net denoises a 64x64x4 latent under cross-attention to a "
        "frozen CLIP text encoder; a VAE decodes the latent to 512x512 pixels",
        training_data="subsets of LAION-5B",
        classes=("StableDiffusionPipeline", ""),
        library="diffusers",
        needs_gpu=True,
    ),
}


def lookup(name: str) -> HubModel:
    """The catalogue entry for a book name (``"gpt2"``) or a hub id (``"openai-community/gpt2"``).

    Unknown names raise a ``KeyError`` that names the id, the closest known ids and their offline
    stand-ins (Chapter 1).
    """
    for model in CATALOGUE.values():
        if name in (model.name, model.hub_id):
            return model
    known = [m.name for m in CATALOGUE.values()] + [m.hub_id for m in CATALOGUE.values()]
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    options = "; ".join(f"{m.hub_id!r} (offline: {m.standin_note})" for m in CATALOGUE.values())
    raise KeyError(f"Unknown model id {name!r}.{hint} The book's catalogue has: {options}.")


def cuda_available() -> bool:
    """True when PyTorch sees a CUDA GPU (Chapter 8)."""
    import torch

    return torch.cuda.is_available()


def unavailable_reason(name: str, *, offline: bool | None = None) -> str | None:
    """Why ``name`` cannot be loaded here, in one sentence, or ``None`` when it can (Chapter 8).

    Lists every missing piece at once: the network (for models without a stand-in), the library
    (``diffusers``) and a CUDA GPU (for ``needs_gpu`` models).
    """
    model = lookup(name)
    offline = is_offline() if offline is None else offline
    missing = []
    if offline and model.standin is None:
        missing.append("the Hugging Face Hub (this session is offline)")
    if not offline and is_simulated_hub() and model.name not in _simulated().BUILDERS:
        missing.append("the real Hugging Face Hub (MMBOOK_SIMULATE_HUB=1 simulates it, without this model)")
    if importlib.util.find_spec(model.library) is None:
        missing.append(f"the package {model.library!r} (not installed: pip install {model.library})")
    if model.needs_gpu and not cuda_available():
        missing.append("a CUDA GPU (none found; on a CPU one picture would take many minutes)")
    if not missing:
        return None
    return f"{model.hub_id} ({model.task}) needs " + ", ".join(missing) + f". Offline: {model.standin_note}."


def online_label() -> str:
    """How notes name the online path: ``"online"``, or ``"online, SIMULATED (random weights)"`` with
    ``MMBOOK_SIMULATE_HUB=1`` (Chapters 8 and 10)."""
    return "online, SIMULATED (random weights)" if is_simulated_hub() else "online"


def _simulated() -> Any:
    from mmbook import simulated_hub

    return simulated_hub


def resolve(name: str, *, offline: bool | None = None, verbose: bool = True) -> Resolved:
    """Decide where ``name`` loads from and say so (Chapter 1).

    Online with ``MMBOOK_SIMULATE_HUB=1``, the source is the simulated checkpoint's folder (built on first
    use), and the printed line says that its weights are random.
    """
    model = lookup(name)
    offline = is_offline() if offline is None else offline
    if not offline and is_simulated_hub():
        folder = _simulated().checkpoint(model.name, model.hub_id)
        resolved = Resolved(model, str(folder), online=True, simulated=True)
        classes = " + ".join(c for c in (model.classes or ()) if c)
        message = (f"online, SIMULATED: {model.hub_id} replaced by a small checkpoint of its classes ({classes}) "
                   f"with RANDOM weights at {folder}; it runs the online code, its outputs are noise")
    elif not offline:
        resolved = Resolved(model, model.hub_id, online=True)
        message = f"online: {model.hub_id} from the Hugging Face Hub"
    elif model.standin is None:
        raise RuntimeError(
            f"{model.hub_id!r} needs the network and the book has no offline stand-in for it: {model.standin_note}."
        )
    else:
        folder = model.standin()
        resolved = Resolved(model, str(folder), online=False)
        message = f"offline: the book's stand-in for {model.hub_id} ({model.standin_note}) at {folder}"
    if verbose:
        print(f"[mmbook.hub] {message}")
    return resolved


def _network_error(error: BaseException) -> bool:
    """Whether ``error`` says the hub could not be reached (no connection, a timeout, an HTTP failure)."""
    names = {"ConnectError", "ConnectionError", "TimeoutException", "Timeout", "HTTPError", "NetworkError"}
    return isinstance(error, OSError) or any(c.__name__ in names for c in type(error).__mro__)


@contextmanager
def _loading(where: Resolved) -> Iterator[None]:
    """Turn a failure to load into a message that says what to do: a simulated checkpoint that cannot be
    loaded, or the real hub unreachable in the middle of a chapter (Chapter 8)."""
    try:
        yield
    except Exception as error:
        if where.simulated and isinstance(error, (OSError, ValueError, KeyError)):
            raise RuntimeError(
                f"The simulated checkpoint of {where.model.hub_id!r} at {where.source} cannot be loaded "
                f"({type(error).__name__}: {str(error)[:300]}). Delete that folder to have it built again."
            ) from error
        if where.online and not where.simulated and _network_error(error):
            raise RuntimeError(
                f"{where.model.hub_id!r} could not be loaded from the Hugging Face Hub ({type(error).__name__}: "
                f"{str(error)[:300]}). Check the network connection and run the cell again, or run the chapter "
                f"offline (MMBOOK_OFFLINE=1) with the book's stand-in: {where.model.standin_note}."
            ) from error
        raise


def from_pretrained(cls: Any, name: str, *, offline: bool | None = None, device: str | None = None,
                    **kwargs: Any) -> Any:
    """``cls.from_pretrained`` on the hub id online or on the stand-in folder offline; a model (a torch
    module) is placed on ``device`` (default :func:`mmbook.env.device`) (Chapter 1)."""
    import torch

    where = resolve(name, offline=offline)
    with _loading(where):
        loaded = cls.from_pretrained(where.source, **where.kwargs, **kwargs)
    if isinstance(loaded, torch.nn.Module):
        loaded = loaded.to(best_device() if device is None else device)
    return loaded


def pipeline(task: str, name: str, *, offline: bool | None = None, **kwargs: Any) -> Any:
    """``transformers.pipeline(task, model=...)`` through the loading policy, on :func:`mmbook.env.device`
    unless ``device`` or ``device_map`` is given (Chapter 1)."""
    from transformers import pipeline as hf_pipeline

    model = lookup(name)
    if task != model.task:
        raise ValueError(f"{model.hub_id!r} is catalogued for the task {model.task!r}, not {task!r}.")
    where = resolve(name, offline=offline)
    if "device_map" not in kwargs:
        kwargs.setdefault("device", best_device())
    with _loading(where):
        return hf_pipeline(task, model=where.source, **where.kwargs, **kwargs)


def load(
    name: str,
    *,
    offline: bool | None = None,
    source: str | Path | None = None,
    dtype: Any = None,
    device: str | None = None,
) -> tuple[Any, Any]:
    """``(model, processor)`` of a catalogue entry through its own classes, in eval mode (Chapter 8).

    Online the classes load the hub id (a simulated checkpoint with ``MMBOOK_SIMULATE_HUB=1``), offline
    the stand-in's folder; ``source`` loads another local folder saved in the same format (the tests use
    small randomly initialised models this way) and says so. ``dtype`` (e.g. ``torch.float16``) is applied
    to the model, which goes to ``device`` (default :func:`mmbook.env.device`: a GPU when there is one).
    Entries without a stand-in raise ``RuntimeError`` offline, with the reason; Stable Diffusion goes
    through :func:`load_diffusion` instead.
    """
    model = lookup(name)
    if model.library != "transformers" or model.classes is None:
        raise ValueError(f"{model.hub_id!r} is not loaded with transformers classes; use load_diffusion().")
    if source is not None:
        where = Resolved(model, str(source), online=False)
        print(f"[mmbook.hub] local: {source} loaded with the classes of {model.hub_id} (given explicitly)")
    else:
        where = resolve(name, offline=offline)
    transformers = importlib.import_module("transformers")
    model_cls, processor_cls = (getattr(transformers, c) for c in model.classes)
    options = {"dtype": dtype} if dtype is not None else {}
    with _loading(where):
        processor = processor_cls.from_pretrained(where.source, **where.kwargs)
        network = model_cls.from_pretrained(where.source, **where.kwargs, **options)
    network = network.to(best_device() if device is None else device)
    return network.eval(), processor


def load_diffusion(name: str = "stable-diffusion", *, offline: bool | None = None) -> Any:
    """Stable Diffusion v1.5 through diffusers, in float16 on the GPU, or a ``RuntimeError`` saying what
    is missing (the network, diffusers, a CUDA GPU) (Chapter 8)."""
    model = lookup(name)
    reason = unavailable_reason(name, offline=offline)
    if reason is not None:
        print(f"[mmbook.hub] unavailable: {reason}")
        raise RuntimeError(reason)
    import torch

    diffusers = importlib.import_module(model.library)
    pipeline_cls = getattr(diffusers, model.classes[0]) if model.classes else diffusers.DiffusionPipeline
    print(f"[mmbook.hub] online: {model.hub_id} from the Hugging Face Hub (diffusers, float16, cuda)")
    options = {"revision": model.revision} if model.revision else {}
    return pipeline_cls.from_pretrained(model.hub_id, torch_dtype=torch.float16, **options).to("cuda")


def photographs() -> dict[str, Any]:
    """Three photographs for the online cells (Chapters 6 and 8): scikit-image's astronaut, coffee and cat
    as uint8 arrays. Without scikit-image, a message, and three shapes-world scenes (256 pixels) in their
    place, so the online code still runs."""
    if importlib.util.find_spec("skimage") is None:
        from mmbook.data import make_shapes
        from mmbook.viz import upscale_nearest

        print("[mmbook.hub] scikit-image is not installed (pip install scikit-image), so there are no "
              "photographs: the online cells use three shapes-world scenes instead")
        return {f"scene {i + 1}": upscale_nearest(image, 256) for i, image in enumerate(make_shapes(3, seed=40).images)}
    from skimage import data as sample_images

    return {"astronaut": sample_images.astronaut(), "coffee": sample_images.coffee(), "cat": sample_images.chelsea()}


def catalogue_rows(offline: bool | None = None) -> list[list[Any]]:
    """One row per catalogue entry for the Chapter 8 table: id, task, parameters, licence, download,
    the classes, the offline path and whether it can run here (Chapter 8)."""
    rows = []
    for model in CATALOGUE.values():
        reason = unavailable_reason(model.name, offline=offline)
        classes = " + ".join(c for c in (model.classes or ()) if c)
        rows.append([
            model.hub_id,
            model.task,
            f"{model.parameters:,}" if model.parameters is not None else "not counted",
            model.licence or "see the model card",
            f"≈{model.download_mb:,.0f} MB" if model.download_mb is not None else "several GB",
            f"{model.library}: {classes}",
            model.standin_note,
            "yes" if reason is None else "no",
        ])
    return rows
