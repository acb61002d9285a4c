"""Executable checks for the appendix "Errata of the source articles" (``book/errata.md``).

Every code correction in that appendix is run here. Where the original mistake can be reproduced
offline, the test reproduces it first and then runs the corrected code. Hub checkpoints cannot be
downloaded in CI, so tiny randomly initialised models, saved with ``save_pretrained`` into a temporary
folder, stand in for them: the code path (``pipeline(..., model=folder)``, ``from_pretrained(folder)``)
is the one a reader runs online with the real model id.

Test names are cited in ``book/errata.md``; keep the two in step.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import io
from pathlib import Path

import gradio as gr  # conftest.py switched telemetry and the hub off before this import
import gradio.utils
import numpy as np
import pytest
import torch
import transformers
from packaging.specifiers import SpecifierSet
from PIL import Image
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from tokenizers import ByteLevelBPETokenizer
from torch import nn
from torch.nn import functional as F
from transformers import (
    BertTokenizerFast,
    GPT2Config,
    GPT2LMHeadModel,
    GPT2TokenizerFast,
    ViltConfig,
    ViltForQuestionAnswering,
    ViltImageProcessorPil,
    ViltProcessor,
    pipeline,
)

# Building a gradio Interface outside a running server leaves asyncio loops that are collected later.
pytestmark = pytest.mark.filterwarnings("ignore:unclosed event loop:ResourceWarning")

VQA_ANSWERS = ["red", "blue", "two"]
VQA_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "what", "color", "is", "the", "cat", "?"]


# --------------------------------------------------------------------------------------------------
# Fixtures: offline stand-ins for hub checkpoints
# --------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def offline(monkeypatch) -> None:
    """Every test here runs offline with telemetry off, whatever the caller's environment says."""
    for key, value in {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                       "HF_HUB_DISABLE_TELEMETRY": "1"}.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def gradio_tmp(tmp_path, monkeypatch):
    """Make gradio write the files it caches for image outputs under the test's temporary folder."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    return tmp_path


@pytest.fixture(scope="module")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    """A 2-layer GPT-2 with random weights and a byte-level BPE tokenizer trained on four sentences."""
    corpus = [
        "a cat sits on the mat",
        "a dog runs in the park",
        "the cat and the dog play",
        "a red ball lies on the grass",
    ]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus * 5, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_vilt_dir(tmp_path_factory) -> Path:
    """A 2-layer ViLT question-answering model with random weights, its tokenizer and image processor."""
    tokenizer = BertTokenizerFast(vocab={word: i for i, word in enumerate(VQA_WORDS)})
    image_processor = ViltImageProcessorPil(size={"shortest_edge": 32}, size_divisor=32)
    processor = ViltProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = ViltConfig(
        vocab_size=len(VQA_WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=16,
        max_position_embeddings=40,
        num_labels=len(VQA_ANSWERS),
        id2label=dict(enumerate(VQA_ANSWERS)),
        label2id={answer: i for i, answer in enumerate(VQA_ANSWERS)},
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-vilt")
    ViltForQuestionAnswering(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------------------------------
# 000: text generation, text-to-image and themes with Gradio
# --------------------------------------------------------------------------------------------------


def test_000_text_generation_returns_generated_text(tiny_gpt2_dir):
    # Online the model argument is the hub id "openai-community/gpt2"; offline a local folder.
    generator = pipeline("text-generation", model=str(tiny_gpt2_dir))  # built once, not per request

    raw = generator("a cat", max_new_tokens=5, do_sample=False)
    assert isinstance(raw, list) and isinstance(raw[0], dict)
    assert set(raw[0]) == {"generated_text"}

    # The article returns the raw result: the text box shows the printed Python list.
    broken = gr.Interface(lambda text: generator(text, max_new_tokens=5, do_sample=False), "text", "text")
    assert broken("a cat").startswith("[{'generated_text': ")

    def complete(text: str) -> str:
        return generator(text, max_new_tokens=5, do_sample=False)[0]["generated_text"]

    demo = gr.Interface(complete, inputs="text", outputs="text")
    answer = demo("a cat")
    assert isinstance(answer, str)
    assert answer.startswith("a cat")  # the pipeline returns prompt + continuation
    assert answer == demo("a cat")  # greedy decoding with a pipeline built once is repeatable


def test_000_outputs_must_name_a_component():
    with pytest.raises(ValueError, match="No such component or layout: result"):
        gr.Interface(lambda text: text, inputs=["text"], outputs=["result"])

    expected = {
        "text": gr.Textbox,
        "textbox": gr.Textbox,
        "image": gr.Image,
        "audio": gr.Audio,
        "label": gr.Label,
    }
    for shortcut, component in expected.items():
        demo = gr.Interface(lambda text: text, inputs="text", outputs=shortcut)
        assert isinstance(demo.output_components[0], component)


def test_000_text_to_image_is_not_a_transformers_task():
    with pytest.raises(KeyError, match="Unknown task text-to-image"):
        transformers.pipelines.check_task("text-to-image")
    with pytest.raises(KeyError, match="Unknown task text-to-image"):
        pipeline("text-to-image")


def test_000_image_output_takes_pil_not_bytes(gradio_tmp):
    def draw(prompt: str) -> Image.Image:
        return Image.new("RGB", (16, 12), (255, 0, 0))

    def draw_png_bytes(prompt: str) -> bytes:
        buffer = io.BytesIO()
        draw(prompt).save(buffer, format="PNG")
        return buffer.getvalue()

    path = gr.Interface(draw, inputs="text", outputs="image")("a red square")
    with Image.open(path) as shown:
        assert shown.size == (16, 12)
        red, green, blue = shown.convert("RGB").getpixel((8, 6))
        assert red > 200 and green < 50 and blue < 50

    array_path = gr.Interface(lambda p: np.zeros((12, 16, 3), dtype=np.uint8), "text", "image")("black")
    with Image.open(array_path) as shown:
        assert shown.size == (16, 12)

    with pytest.raises(ValueError, match="Cannot process this value as an Image"):
        gr.Interface(draw_png_bytes, inputs="text", outputs="image")("a red square")


def test_000_theme_belongs_to_launch():
    assert set(gradio.utils.BUILT_IN_THEMES) == {
        "base",
        "default",
        "monochrome",
        "soft",
        "glass",
        "origin",
        "citrus",
        "ocean",
        "mario",
    }
    # launch() resolves a theme string with this function; an unknown name is tried as a hub theme,
    # and when that fails gradio warns and falls back to the default theme.
    with pytest.warns(UserWarning, match="Cannot load clean"):
        fallback = gradio.utils.get_theme("clean")
    assert type(fallback) is gr.themes.Default
    assert type(gradio.utils.get_theme("soft")) is gr.themes.Soft

    assert "theme" in inspect.signature(gr.Blocks.launch).parameters
    with pytest.warns(UserWarning, match="moved from the Blocks constructor to the launch"):
        gr.Interface(lambda text: text, inputs="text", outputs="image", theme=gr.themes.Soft())


def test_000_transformers_covers_all_modalities_and_is_pytorch_only():
    summary = importlib.metadata.metadata("transformers")["Summary"]
    for modality in ("text", "vision", "audio", "multimodal"):
        assert modality in summary
    with pytest.raises(ImportError):
        from transformers import TFAutoModel  # noqa: F401


# --------------------------------------------------------------------------------------------------
# 001: what Gradio is, preprocessing, prediction, and the fusion formula
# --------------------------------------------------------------------------------------------------


def test_001_gradio_wraps_any_python_function():
    summary = importlib.metadata.metadata("gradio")["Summary"]
    assert "machine learning models" in summary

    def say_hello(name: str) -> str:
        return f"Hello {name}!"

    iface = gr.Interface(fn=say_hello, inputs="text", outputs="text")
    assert iface("World") == "Hello World!"  # no model anywhere: Gradio is only the interface


def test_001_tokenizer_keeps_stop_words():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "is", "not", "on", "mat"]
    tokenizer = BertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)})
    negated, plain = "the cat is not on the mat", "the cat is on the mat"

    assert "not" in tokenizer.tokenize(negated)
    assert tokenizer(negated)["input_ids"] != tokenizer(plain)["input_ids"]

    def drop_stop_words(text: str) -> list[str]:
        return [word for word in text.split() if word not in ENGLISH_STOP_WORDS]

    assert "not" in ENGLISH_STOP_WORDS
    assert drop_stop_words(negated) == drop_stop_words(plain)  # the negation is gone


def test_001_segmentation_predicts_with_argmax():
    torch.manual_seed(0)
    num_classes = 3
    head = nn.Conv2d(8, num_classes, kernel_size=1)  # per-pixel class scores
    features = torch.randn(2, 8, 4, 4)
    target = torch.randint(0, num_classes, (2, 4, 4))

    logits = head(features)
    loss = F.cross_entropy(logits, target)  # training signal: one number for the whole batch
    assert loss.ndim == 0
    loss.backward()
    assert head.weight.grad is not None

    prediction = logits.argmax(dim=1)  # inference: one class per pixel, no loss involved
    assert prediction.shape == target.shape
    assert torch.equal(prediction, logits.softmax(dim=1).argmax(dim=1))


def test_001_fusion_applies_f_to_image_and_g_to_text():
    torch.manual_seed(0)
    f = nn.Sequential(  # CNN(I; theta): image -> 8 features
        nn.Conv2d(3, 8, kernel_size=3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )

    class TextEncoder(nn.Module):  # Transformer(T; phi): token ids -> 16 features
        def __init__(self, vocab_size: int = 20, dim: int = 16):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, dim)
            self.layer = nn.TransformerEncoderLayer(dim, nhead=2, dim_feedforward=32, batch_first=True)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.layer(self.embed(tokens)).mean(dim=1)

    g = TextEncoder()
    h = nn.Linear(8 + 16, 10)  # Fusion(.; psi) over the concatenated outputs

    image = torch.rand(2, 3, 16, 16)
    text = torch.randint(0, 20, (2, 7))
    fused = h(torch.cat([f(image), g(text)], dim=-1))  # h(f(I; theta), g(T; phi); psi)
    assert fused.shape == (2, 10)

    with pytest.raises(RuntimeError):
        f(text)  # the article's f(T): a CNN cannot read token ids
    with pytest.raises(RuntimeError):
        g(image)  # the article's g(I): an embedding table cannot read pixels


# --------------------------------------------------------------------------------------------------
# 002: inference, the fusion equations, the environment, the Gradio API and the Keras code
# --------------------------------------------------------------------------------------------------


def test_002_inference_has_no_backward_pass():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(5, 4)

    model.eval()
    with torch.inference_mode():
        prediction = model(x).argmax(dim=-1)
    assert not prediction.requires_grad
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))

    # Only training computes gradients and changes the parameters.
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    F.cross_entropy(model(x), torch.tensor([0, 1, 0, 1, 0])).backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_002_concatenation_instead_of_matrix_on_pair():
    torch.manual_seed(0)
    d_t, d_i, d_a = 6, 4, 3
    h_t, h_i = torch.randn(2, d_t), torch.randn(2, d_i)
    w_a = nn.Linear(d_t + d_i, d_a)

    with pytest.raises(TypeError):
        w_a((h_t, h_i))  # "W_a (h_t, h_i)": a matrix cannot multiply a pair

    y = w_a(torch.cat([h_t, h_i], dim=-1))  # W_a [h_t; h_i] + b_a
    # A matrix acting on a concatenation is a sum of two blocks, one per modality.
    blocks = h_t @ w_a.weight[:, :d_t].T + h_i @ w_a.weight[:, d_t:].T + w_a.bias
    assert y.shape == (2, d_a)
    assert torch.allclose(y, blocks, atol=1e-6)


class GatedMultimodalUnit(nn.Module):
    """GMU of Arevalo et al. (2017): a learned, per-feature gate between two modalities."""

    def __init__(self, d_v: int, d_t: int, d_h: int):
        super().__init__()
        self.w_v = nn.Linear(d_v, d_h, bias=False)
        self.w_t = nn.Linear(d_t, d_h, bias=False)
        self.w_z = nn.Linear(d_v + d_t, d_h, bias=False)

    def forward(self, x_v: torch.Tensor, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h_v = torch.tanh(self.w_v(x_v))
        h_t = torch.tanh(self.w_t(x_t))
        z = torch.sigmoid(self.w_z(torch.cat([x_v, x_t], dim=-1)))
        return z * h_v + (1 - z) * h_t, z


def test_002_gated_multimodal_unit():
    torch.manual_seed(0)
    gmu = GatedMultimodalUnit(d_v=12, d_t=7, d_h=5)
    x_v, x_t = torch.randn(4, 12), torch.randn(4, 7)

    h, z = gmu(x_v, x_t)
    assert h.shape == z.shape == (4, 5)
    assert bool(((z > 0) & (z < 1)).all())  # a gate, not a softmax over positions

    h_v, h_t = torch.tanh(gmu.w_v(x_v)), torch.tanh(gmu.w_t(x_t))
    low, high = torch.minimum(h_v, h_t), torch.maximum(h_v, h_t)
    assert bool(((h >= low - 1e-6) & (h <= high + 1e-6)).all())  # h lies between the two modalities

    with torch.no_grad():
        gmu.w_z.weight.zero_()  # z = sigmoid(0) = 1/2: the plain average
    h_half, _ = gmu(x_v, x_t)
    assert torch.allclose(h_half, (h_v + h_t) / 2, atol=1e-6)

    h.sum().backward()
    assert all(p.grad is not None for p in gmu.parameters())

    # The gate mixes h_v and h_t feature by feature, so both must have the same size.
    with pytest.raises(RuntimeError):
        z * torch.randn(4, 5) + (1 - z) * torch.randn(4, 6)


def test_002_environment_meets_python_floor():
    for package, floor in (("gradio", "3.10"), ("transformers", "3.11")):
        requires = SpecifierSet(importlib.metadata.metadata(package)["Requires-Python"])
        assert "3.8" not in requires  # the article's python=3.8 cannot install them
        assert floor in requires


def test_002_gradio_has_no_gradio_class():
    with pytest.raises(ImportError):
        from gradio import Gradio  # noqa: F401
    assert not hasattr(gr, "Gradio")
    # mount_gradio_app exists, but it mounts a finished Gradio app onto a FastAPI server.
    assert list(inspect.signature(gr.mount_gradio_app).parameters)[:3] == ["app", "blocks", "path"]


def test_002_vqa_with_vilt_in_an_interface(tiny_vilt_dir, gradio_tmp):
    # transformers 5 removed the visual-question-answering pipeline; ViLT is called directly.
    with pytest.raises(KeyError, match="visual-question-answering has been removed"):
        pipeline("visual-question-answering")

    # Online: from_pretrained("dandelin/vilt-b32-finetuned-vqa"); offline: the tiny stand-in.
    processor = ViltProcessor.from_pretrained(tiny_vilt_dir)
    model = ViltForQuestionAnswering.from_pretrained(tiny_vilt_dir).eval()

    def answer(image: Image.Image, question: str) -> str:
        inputs = processor(image, question, return_tensors="pt")
        with torch.inference_mode():
            logits = model(**inputs).logits
        assert logits.shape == (1, model.config.num_labels)
        return model.config.id2label[logits.argmax(-1).item()]

    picture = gradio_tmp / "cat.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(picture)

    demo = gr.Interface(answer, inputs=[gr.Image(type="pil"), gr.Textbox()], outputs="text")
    reply = demo(str(picture), "what color is the cat?")
    assert reply in VQA_ANSWERS
    assert reply == answer(Image.open(picture).convert("RGB"), "what color is the cat?")


def make_matching_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images whose bright quadrant encodes a class 0-3, a word id, and label 1 when the word names it."""
    generator = torch.Generator().manual_seed(seed)
    classes = torch.randint(0, 4, (n,), generator=generator)
    images = 0.1 * torch.rand(n, 1, 8, 8, generator=generator)
    for k, c in enumerate(classes.tolist()):
        row, col = divmod(c, 2)
        images[k, 0, 4 * row : 4 * row + 4, 4 * col : 4 * col + 4] += 1.0
    matched = torch.rand(n, generator=generator) < 0.5
    other = (classes + torch.randint(1, 4, (n,), generator=generator)) % 4
    words = torch.where(matched, classes, other)
    return images, words, matched.long()


class ImageTextMatcher(nn.Module):
    """Two inputs, one branch each, fused by concatenation, two logits: no match / match."""

    def __init__(self, vocab_size: int = 4, dim: int = 32):
        super().__init__()
        self.image_branch = nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * 4 * 4, dim),
            nn.ReLU(),
        )
        self.text_branch = nn.Embedding(vocab_size, dim)  # integer word ids, never pixels
        self.head = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, 2))

    def forward(self, images: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.image_branch(images), self.text_branch(words)], dim=-1))


def test_002_two_input_matching_model_trains(tmp_path):
    torch.manual_seed(0)
    images, words, labels = make_matching_data(512, seed=1)
    test_images, test_words, test_labels = make_matching_data(256, seed=2)
    assert labels.dtype == torch.long  # integer class ids, the PyTorch form of "sparse" labels

    # The article's faults, reproduced in PyTorch.
    with pytest.raises(RuntimeError):
        nn.Embedding(10, 128)(images)  # an embedding table applied to float pixels
    with pytest.raises(TypeError):
        nn.Linear(128, 128)([torch.zeros(2, 128), torch.zeros(2, 128)])  # a dense layer given two inputs
    with pytest.raises(TypeError):
        nn.Sequential(nn.Flatten(), nn.Linear(64, 2))(images, words)  # a stack takes one input
    with pytest.raises(FileNotFoundError):
        torch.load(tmp_path / "model.pt")  # loading weights that were never saved

    model = ImageTextMatcher()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    first_loss = None
    for _ in range(150):
        optimizer.zero_grad()
        loss = loss_fn(model(images, words), labels)  # both inputs are fed, every step
        loss.backward()
        optimizer.step()
        first_loss = loss.item() if first_loss is None else first_loss
    assert loss.item() < 0.5 * first_loss

    model.eval()
    with torch.inference_mode():
        test_prediction = model(test_images, test_words).argmax(dim=-1)
    assert (test_prediction == test_labels).float().mean().item() >= 0.9

    torch.save(model.state_dict(), tmp_path / "model.pt")  # save first, then load
    restored = ImageTextMatcher()
    restored.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    restored.eval()
    with torch.inference_mode():
        assert torch.equal(restored(test_images, test_words).argmax(dim=-1), test_prediction)


# --------------------------------------------------------------------------------------------------
# 004: the fusion formula and the Keras model
# --------------------------------------------------------------------------------------------------


def test_004_modality_specific_encoders_and_fusion():
    torch.manual_seed(0)
    d = 16
    phi_1 = nn.Sequential(nn.Conv2d(3, d, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())  # image
    phi_2 = nn.EmbeddingBag(50, d)  # text: mean of word vectors
    phi_3 = nn.Sequential(nn.Conv1d(20, d, 5), nn.AdaptiveAvgPool1d(1), nn.Flatten())  # audio spectrogram
    psi = nn.Linear(3 * d, d)

    x_1 = torch.rand(2, 3, 16, 16)
    x_2 = torch.randint(0, 50, (2, 9))
    x_3 = torch.rand(2, 20, 40)  # 20 mel bands x 40 frames

    def f(x_1, x_2, x_3):  # f = g(phi_1(x_1), phi_2(x_2), phi_3(x_3)), g = sum + psi(concat)
        z = [phi_1(x_1), phi_2(x_2), phi_3(x_3)]
        return sum(z) + psi(torch.cat(z, dim=-1))

    out = f(x_1, x_2, x_3)
    additive = phi_1(x_1) + phi_2(x_2) + phi_3(x_3)
    assert out.shape == (2, d)
    assert not torch.allclose(out, additive)  # the article's chain of equalities would force this

    with torch.no_grad():
        psi.weight.zero_()
        psi.bias.zero_()
    assert torch.allclose(f(x_1, x_2, x_3), additive)  # ... and holds only when psi is zero

    with pytest.raises(RuntimeError):
        phi_1(x_2)  # one shared phi cannot take every modality
    with pytest.raises(ValueError):
        phi_2(x_1)


class MultiModalModel(nn.Module):
    """The article's model with the missing step: pool the convolution map before concatenating."""

    def __init__(self, text_features: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, kernel_size=3)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())  # GlobalAveragePooling2D
        self.dense1 = nn.Linear(text_features, 128)
        self.dense2 = nn.Linear(64 + 128, 1)

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        x1 = self.pool(torch.relu(self.conv1(image)))  # (B, 64)
        x2 = torch.relu(self.dense1(features))  # (B, 128)
        return torch.sigmoid(self.dense2(torch.cat([x1, x2], dim=-1)))


def test_004_concat_conv_map_with_dense_features():
    torch.manual_seed(0)
    image, features = torch.rand(2, 1, 28, 28), torch.rand(2, 10)
    conv_map = nn.Conv2d(1, 64, 3)(image)
    dense_out = nn.Linear(10, 128)(features)
    assert conv_map.shape == (2, 64, 26, 26) and dense_out.shape == (2, 128)

    with pytest.raises(RuntimeError, match="same number of dimensions"):
        torch.cat([conv_map, dense_out], dim=1)  # the article's bug: a 4-D map and a 2-D vector

    assert torch.cat([conv_map.flatten(1), dense_out], dim=1).shape == (2, 64 * 26 * 26 + 128)
    assert torch.cat([conv_map.mean(dim=(2, 3)), dense_out], dim=1).shape == (2, 64 + 128)

    model = MultiModalModel()
    probability = model(image, features)
    assert probability.shape == (2, 1)
    assert bool(((probability > 0) & (probability < 1)).all())
    loss = F.binary_cross_entropy(probability, torch.tensor([[1.0], [0.0]]))
    loss.backward()
    assert model.conv1.weight.grad is not None and model.dense1.weight.grad is not None
