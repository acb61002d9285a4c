"""The tone reader: the shapes world's sound read back into words, the offline stand-in for speech input (Chapter 10).

A shapes-world clip (:func:`mmbook.data.make_shapes`) plays one tone per shape in reading order, each in
its own slot of ``CLIP_SECONDS / max_shapes`` seconds: the pitch says the colour (:data:`TONE_HZ`), the
waveform says the kind of shape (:data:`WAVEFORMS`), and a slot without a shape holds only faint noise.
:class:`ToneReader` cuts a clip into those slots, takes the magnitude spectrum of each and lets a small
network name the colour (or "no tone") and the shape, so that a clip "transcribes" to words such as
``"red circle, blue square"``.

It is a *tone reader*, not speech recognition: it hears nothing but the six pitches and five timbres it
was trained on, assumes the slots start at the beginning of the clip, ignores loudness (the shape's
size), and will map any other sound to the nearest tones it knows. The network is trained on first use
(a few seconds) and cached by the :mod:`mmbook.zoo` registry; its accuracy on held-out clips is
measured and saved beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmbook import zoo
from mmbook.data.world import CLIP_SECONDS, COLORS, SAMPLE_RATE, SHAPE_KINDS, TONE_HZ, WAVEFORMS
from mmbook.env import training_state

#: How many tone slots a clip has: the tone reader reads clips made with ``make_shapes(max_shapes=3)``.
SLOTS_PER_CLIP = 3
#: Samples per slot at :data:`SAMPLE_RATE` (8 kHz), exactly as ``make_shapes`` cuts a clip.
SLOT_SAMPLES = int(SAMPLE_RATE * CLIP_SECONDS) // SLOTS_PER_CLIP
FFT_SIZE = 2048
#: The longest clip the tone reader accepts, in seconds (60 slots).
MAX_SECONDS = 10.0
#: The colour classes: the six colours and "no tone" (an empty slot).
NO_TONE = "none"
COLOR_CLASSES: tuple[str, ...] = (*COLORS, NO_TONE)

@dataclass(frozen=True)
class ToneReaderSettings:
    """How the tone reader is built and trained: clips, network size, steps and gains (Chapter 10)."""

    n_clips: int = 3000
    data_seed: int = 41
    eval_clips: int = 1000
    eval_seed: int = 42
    hidden: int = 64
    steps: int = 500
    batch_size: int = 256
    lr: float = 3e-3
    gain_low: float = 0.25
    gain_high: float = 2.0
    seed: int = 0


#: The tone reader's settings; a cached model saved with other settings is retrained.
TONE_READER = ToneReaderSettings()
_WEIGHTS = "model.safetensors"


def slot_features(clips: np.ndarray) -> np.ndarray:
    """Log-magnitude spectra of every slot: (N, T) clips at 8 kHz → (N, slots, ``FFT_SIZE // 2 + 1``) (Chapter 10).

    A clip is cut into slots of :data:`SLOT_SAMPLES` from its start; a last part longer than half a slot
    is padded with zeros and read as one more slot. Each slot is tapered with a Hann window before the FFT.
    """
    clips = np.atleast_2d(np.asarray(clips, dtype=np.float32))
    whole, rest = divmod(clips.shape[1], SLOT_SAMPLES)
    slots = whole + (rest >= SLOT_SAMPLES // 2)
    padded = np.zeros((len(clips), max(slots, 1) * SLOT_SAMPLES), np.float32)
    used = min(clips.shape[1], padded.shape[1])
    padded[:, :used] = clips[:, :used]
    windowed = padded.reshape(len(clips), -1, SLOT_SAMPLES) * np.hanning(SLOT_SAMPLES).astype(np.float32)
    return np.log1p(np.abs(np.fft.rfft(windowed, n=FFT_SIZE, axis=-1))).astype(np.float32)


def slot_labels(attributes: list[list[dict[str, Any]]]) -> tuple[np.ndarray, np.ndarray]:
    """Colour class (index into :data:`COLOR_CLASSES`) and shape index of every slot, (N, 3) each; the
    shape of an empty slot is -1 (Chapter 10)."""
    colors = np.full((len(attributes), SLOTS_PER_CLIP), COLOR_CLASSES.index(NO_TONE))
    kinds = np.full((len(attributes), SLOTS_PER_CLIP), -1)
    for i, objects in enumerate(attributes):
        for j, o in enumerate(objects):
            colors[i, j], kinds[i, j] = COLOR_CLASSES.index(o["color"]), SHAPE_KINDS.index(o["shape"])
    return colors, kinds


def words_for(objects: list[dict[str, Any]]) -> str:
    """The transcript a clip should get: ``"red circle, blue square"`` in reading order (Chapter 10)."""
    return ", ".join(f"{o['color']} {o['shape']}" for o in objects)


def _network(settings: ToneReaderSettings) -> Any:
    import torch

    class ToneNet(torch.nn.Module):
        """One hidden layer over a slot's spectrum, then two heads: colour (or no tone) and shape."""

        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(FFT_SIZE // 2 + 1, settings.hidden), torch.nn.ReLU())
            self.color = torch.nn.Linear(settings.hidden, len(COLOR_CLASSES))
            self.shape = torch.nn.Linear(settings.hidden, len(SHAPE_KINDS))

        def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            hidden = self.body(features)
            return self.color(hidden), self.shape(hidden)

    return ToneNet()


@dataclass
class Reading:
    """What the tone reader heard in one slot: colour and shape, or ``None`` for no tone, and how sure it is."""

    color: str | None
    shape: str | None
    confidence: float

    @property
    def words(self) -> str:
        return f"{self.color} {self.shape}" if self.color else ""


class ToneReader:
    """The trained network and the code around it: clip in, one :class:`Reading` per slot out (Chapter 10)."""

    def __init__(self, network: Any, record: dict[str, Any]) -> None:
        self.network, self.record = network.eval(), record

    def read(self, clip: np.ndarray) -> list[Reading]:
        """Read a mono 8 kHz clip (float in [-1, 1], e.g. from :func:`mmbook.sound.prepare_audio`)."""
        import torch

        with torch.inference_mode():
            color_logits, shape_logits = self.network(torch.from_numpy(slot_features(clip)[0]))
        color_p, shape_p = color_logits.softmax(-1), shape_logits.softmax(-1)
        readings = []
        for cp, sp in zip(color_p, shape_p, strict=True):
            color = COLOR_CLASSES[int(cp.argmax())]
            if color == NO_TONE:
                readings.append(Reading(None, None, float(cp.max())))
            else:
                readings.append(Reading(color, SHAPE_KINDS[int(sp.argmax())], float(cp.max() * sp.max())))
        return readings

    def transcribe(self, clip: np.ndarray) -> str:
        """The clip's tones as words, ``"red circle, blue square"``; empty if it heard no tone."""
        return ", ".join(r.words for r in self.read(clip) if r.color)


def accuracy(reader: ToneReader, shapes: Any) -> dict[str, float]:
    """Held-out accuracy of ``reader`` on a shapes-world batch made with ``max_shapes=3`` (Chapter 10).

    ``color``: slots whose colour (or "no tone") is right; ``shape``: tones whose shape is right;
    ``clip``: clips whose whole transcript is exactly right.
    """
    import torch

    colors, kinds = slot_labels(shapes.attributes)
    with torch.inference_mode():
        color_logits, shape_logits = reader.network(torch.from_numpy(slot_features(shapes.audio)))
    color_hat, shape_hat = color_logits.argmax(-1).numpy(), shape_logits.argmax(-1).numpy()
    tone = kinds >= 0
    transcripts = [reader.transcribe(clip) for clip in shapes.audio]
    truth = [words_for(objects) for objects in shapes.attributes]
    return {"color": float((color_hat == colors).mean()), "shape": float((shape_hat == kinds)[tone].mean()),
            "clip": float(np.mean([a == b for a, b in zip(transcripts, truth, strict=True)]))}  # fmt: skip


@training_state(threads=1)
def train_tone_reader(folder: Path, settings: ToneReaderSettings = TONE_READER) -> dict[str, Any]:
    """Train the tone reader on shapes-world clips and save its weights and record in ``folder`` (Chapter 10).

    Each clip is played at a random gain (``gain_low`` to ``gain_high``, then clipped to [-1, 1]) so the
    reader does not depend on how loud a recording is. Cross-entropy on the colour of every slot (an
    empty slot is the class "no tone") plus cross-entropy on the shape of every slot that holds a tone;
    Adam. The record holds the settings, the losses, the training time and :func:`accuracy` on
    ``eval_clips`` new clips. One CPU thread: a network this small gains nothing from two, and when
    another process keeps the cores busy, two threads waiting on each other made the training ten times slower.
    """
    import torch
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from mmbook.data import make_shapes

    data = make_shapes(settings.n_clips, seed=settings.data_seed, max_shapes=SLOTS_PER_CLIP)
    held_out = make_shapes(settings.eval_clips, seed=settings.eval_seed, max_shapes=SLOTS_PER_CLIP)
    rng = np.random.default_rng(settings.seed)
    gains = rng.uniform(settings.gain_low, settings.gain_high, (data.n, 1)).astype(np.float32)
    features = torch.from_numpy(slot_features(np.clip(data.audio * gains, -1, 1)).reshape(-1, FFT_SIZE // 2 + 1))
    colors, kinds = (torch.from_numpy(a.reshape(-1)) for a in slot_labels(data.attributes))
    torch.manual_seed(settings.seed)
    network = _network(settings)
    optimiser = torch.optim.Adam(network.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    losses = []
    start = time.perf_counter()
    network.train()
    for _ in tqdm(range(settings.steps), desc="training the tone reader", leave=False):
        rows = torch.randint(0, len(features), (settings.batch_size,), generator=generator)
        color_logits, shape_logits = network(features[rows])
        tone = kinds[rows] >= 0
        loss = (torch.nn.functional.cross_entropy(color_logits, colors[rows])
                + torch.nn.functional.cross_entropy(shape_logits[tone], kinds[rows][tone]))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    seconds = time.perf_counter() - start
    network.eval()
    record = {"losses": losses, "train_seconds": seconds, "parameters": sum(p.numel() for p in network.parameters())}
    record["accuracy"] = accuracy(ToneReader(network, record), held_out)
    save_file(network.state_dict(), str(folder / _WEIGHTS))
    return record


def _load_tone_reader(folder: Path) -> ToneReader:
    from safetensors.torch import load_file

    record = zoo.read_record(folder)
    network = _network(ToneReaderSettings(**record["settings"]))
    network.load_state_dict(load_file(str(folder / _WEIGHTS)))
    return ToneReader(network, record)


def _check_tone_reader(reader: ToneReader) -> None:
    import torch

    with torch.inference_mode():
        logits = reader.network(torch.zeros(1, FFT_SIZE // 2 + 1))
    if not all(torch.isfinite(x).all() for x in logits):
        raise ValueError("the saved weights give non-finite logits")


TONE_READER_ENTRY = zoo.register(zoo.Entry(
    "tone-reader", "the tone reader", TONE_READER, train_tone_reader, _load_tone_reader, _check_tone_reader,
    code=(_network, slot_features, slot_labels),
))  # fmt: skip


def tone_reader_path() -> Path:
    """Folder of the tone reader: trained on first use (a few seconds on 2 CPU cores), then loaded (Chapter 10)."""
    return zoo.path("tone-reader")


def tone_reader_record() -> dict[str, Any]:
    """The tone reader's record: ``settings``, losses, training time and held-out accuracy (Chapter 10)."""
    return zoo.record("tone-reader")


def tone_reader() -> ToneReader:
    """The trained :class:`ToneReader`, trained on first use, one copy per process (Chapter 10)."""
    return zoo.load("tone-reader")


__all__ = ["COLOR_CLASSES", "MAX_SECONDS", "SLOT_SAMPLES", "TONE_HZ", "WAVEFORMS", "Reading", "ToneReader",
           "accuracy", "slot_features", "slot_labels", "tone_reader", "tone_reader_path", "tone_reader_record",
           "train_tone_reader", "words_for"]
