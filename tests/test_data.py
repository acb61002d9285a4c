"""Tests of mmbook.data: the generated datasets are deterministic, true of their pixels and sounds, fast,
closed over their vocabulary, and usable with torch and transformers."""

from __future__ import annotations

import functools
import re
import time

import numpy as np
import pytest
import torch
from mmbook.data import (
    ANSWERS,
    CHANNEL_NAMES,
    COLORS,
    DIGITS_VOCABULARY,
    HELDOUT_COMBINATIONS,
    HINT_GROUPS,
    LABELS,
    NUMBER_WORDS,
    POSITIONS,
    QUESTION_TYPES,
    SENSORS_VOCABULARY,
    SHAPE_KINDS,
    SHAPES_VOCABULARY,
    TRAIN_COMBINATIONS,
    VOCABULARY,
    Digits,
    DigitsDataset,
    Shapes,
    ShapesDataset,
    add_noise,
    collate,
    hint_candidates,
    make_digits,
    make_sensors,
    make_shapes,
    tokenizer,
    words,
)
from mmbook.data.world import TONE_HZ

SYNONYMS = {"disk": "circle", "box": "square", "rhombus": "diamond", "plus": "cross", "violet": "purple",
            "little": "small", "tiny": "small", "big": "large"}  # fmt: skip
PLURALS = {kind + ("es" if kind.endswith("s") else "s"): kind for kind in SHAPE_KINDS}


@functools.cache
def shapes() -> Shapes:
    return make_shapes(300)


@functools.cache
def digits() -> Digits:
    return make_digits(seed=0)


# ---------------------------------------------------------------------------------------------- shapes


def test_shapes_same_seed_same_data_other_seed_other_data():
    a, b, c = make_shapes(50, seed=1), make_shapes(50, seed=1), make_shapes(50, seed=2)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.audio, b.audio)
    for field in ("captions", "questions", "answers", "attributes"):
        assert getattr(a, field) == getattr(b, field)
    assert not np.array_equal(a.images, c.images) and not np.array_equal(a.audio, c.audio)
    assert a.captions != c.captions


def test_shapes_fields_and_item():
    s = make_shapes(40, seed=3, image_size=64, min_shapes=2, max_shapes=5)
    assert (s.n, s.image_size, len(s)) == (40, 64, 40)
    assert s.images.dtype == np.uint8 and s.images.shape == (40, 64, 64, 3)
    assert s.audio.dtype == np.float32 and s.audio.shape == (40, s.sample_rate // 2)
    assert len(s.captions) == len(s.attributes) == len(s.questions) == len(s.answers) == 40
    for objects, qs, ans in zip(s.attributes, s.questions, s.answers, strict=True):
        assert 2 <= len(objects) <= 5 and len(qs) == len(ans) == len(QUESTION_TYPES)
        cells = [POSITIONS.index(o["position"]) for o in objects]
        assert cells == sorted(set(cells))  # one shape per cell, in reading order
        assert set(ans) <= set(ANSWERS)
        for o in objects:
            assert {"shape", "color", "position", "size", "x", "y", "row", "col"} <= o.keys()
    item = s[7]
    assert item["caption"] == s.captions[7] and np.array_equal(item["image"], s.images[7])
    assert set(item) >= {"image", "caption", "attributes", "questions", "answers", "audio"}


def _inside(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The shapes' geometry as specified, in units of the radius around the centre (v points down)."""
    au, av = abs(u), abs(v)
    return {
        "circle": u**2 + v**2 <= 1,
        "square": np.maximum(au, av) <= 0.85,
        "triangle": (v >= -1) & (v <= 0.9) & (au <= 1.1 * (v + 1) / 1.9),
        "diamond": au + av <= 1.05,
        "cross": ((au <= 0.35) & (av <= 1)) | ((av <= 0.35) & (au <= 1)),
    }[kind]


@pytest.mark.parametrize("size", [32, 64])
def test_shapes_attributes_are_true_of_the_pixels(size):
    s = make_shapes(60, seed=4, image_size=size, max_shapes=9)
    palette = {name: np.array(rgb, float) for name, rgb in COLORS.items()}
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    offsets = (np.arange(4) - 1.5) / 4  # a 4x4 grid of points inside each pixel
    for image, objects in zip(s.images.astype(float), s.attributes, strict=True):
        background = np.median(image.reshape(-1, 3), axis=0)
        distance = np.linalg.norm(image - background, axis=-1)
        covered = np.zeros((size, size), bool)
        for o in objects:
            row, col = divmod(POSITIONS.index(o["position"]), 3)
            cell = (yy * 3 // size == row) & (xx * 3 // size == col)
            assert cell[int(o["y"]), int(o["x"])]
            covered |= cell
            # the kind: the coverage of each kind's template (supersampled) against the observed coverage
            alpha = np.clip(distance / distance[cell].max(), 0, 1) * cell
            u, v = (xx - o["x"]) / o["radius"], (yy - o["y"]) / o["radius"]
            scores = {}
            for kind in SHAPE_KINDS:
                samples = [
                    _inside(kind, u + a / o["radius"], v + b / o["radius"]) for a in offsets for b in offsets
                ]
                coverage = np.mean(samples, axis=0)
                scores[kind] = np.minimum(alpha, coverage).sum() / np.maximum(alpha, coverage).sum()
            assert max(scores, key=scores.get) == o["shape"], (o, scores)
            # the colour: mean colour well inside the shape is nearest to the stated colour
            mean = image[_inside(o["shape"], 1.4 * u, 1.4 * v)].mean(axis=0)
            assert min(palette, key=lambda c: np.linalg.norm(palette[c] - mean)) == o["color"]
        assert (distance[~covered] < 20).all()  # nothing outside the stated shapes' cells


def _cell(phrase: str) -> tuple[int, int]:
    """Grid cell named by a position phrase: top/bottom pick the row, left/right the column."""
    w = set(words(phrase))
    return (0 if "top" in w else 2 if "bottom" in w else 1), (0 if "left" in w else 2 if "right" in w else 1)


def _at(objects: list[dict], phrase: str) -> list[dict]:
    return [o for o in objects if (o["row"], o["col"]) == _cell(phrase)]


def _oracle(question: str, objects: list[dict]) -> str:
    """Answer a generated question from the ground-truth attributes alone."""
    q = question.rstrip("?")
    w = [SYNONYMS.get(x, x) for x in words(q)]
    if re.match(r"(what|which) colou?r is the ", q):
        kind, *phrase = q.split(" is the ", 1)[1].split(" ", 1)
        (o,) = [o for o in objects if o["shape"] == kind and (not phrase or o in _at(objects, phrase[0]))]
        return o["color"]
    if re.match(r"(what|which) (kind of )?shape is ", q):
        (o,) = _at(objects, q.split(" is ", 1)[1])
        return o["shape"]
    if q.startswith("how many"):
        color = [x for x in w if x in COLORS]
        kind = [PLURALS[x] for x in w if x in PLURALS]
        count = sum(
            (not color or o["color"] == color[0]) and (not kind or o["shape"] == kind[0]) for o in objects
        )
        return NUMBER_WORDS[count]
    if q.startswith("is the "):
        target = q[len("is the ") :].split(" at the top,")[0].split(" on the left,")[0].split()
        (o,) = [o for o in objects if all(t in (o["size"], o["color"], o["shape"]) for t in target)]
        rows, columns = ("top", "middle", "bottom"), ("left", "center", "right")
        return rows[o["row"]] if "bottom" in w else columns[o["col"]]
    if q.startswith(("is there a shape", "is anything")):
        return "yes" if _at(objects, q) else "no"
    color, kind = [x for x in w if x in COLORS][0], [x for x in w if x in SHAPE_KINDS][0]
    return "yes" if any((o["color"], o["shape"]) == (color, kind) for o in objects) else "no"


@pytest.mark.parametrize("kwargs", [{}, {"max_shapes": 9, "seed": 5}, {"split": "train", "max_shapes": 6}])
def test_answers_are_true_of_the_attributes(kwargs):
    s = make_shapes(300, **kwargs)
    for objects, qs, ans in zip(s.attributes, s.questions, s.answers, strict=True):
        for q, a in zip(qs, ans, strict=True):
            assert _oracle(q, objects) == a, (q, a, objects)


def _caption_objects(caption: str) -> list[str]:
    body = re.sub(r" on a dark background$", "", caption)
    body = re.sub(r"^(there is |an image of |a picture (with|of) |(.+ )?(shapes?|objects):)", "", body)
    return [p.strip() for p in re.split(r", | and ", body)]


@pytest.mark.parametrize("kwargs", [{}, {"max_shapes": 9, "seed": 6}])
def test_captions_are_true_of_the_attributes(kwargs):
    s = make_shapes(300, **kwargs)
    for caption, objects in zip(s.captions, s.attributes, strict=True):
        phrases = _caption_objects(caption)
        assert len(phrases) == len(objects), caption
        if re.match(r"(.+ )?(shapes|objects):", caption):
            assert NUMBER_WORDS[len(objects)] in words(caption.split(":")[0])
        for phrase, o in zip(phrases, objects, strict=True):
            w = [SYNONYMS.get(x, x) for x in words(phrase)]
            assert o["shape"] in w and o["color"] in w, (phrase, o)
            assert not {"small", "large"} & set(w) or o["size"] in w, (phrase, o)
            assert all(x not in w for x in ("top", "bottom")) or _cell(phrase)[0] == o["row"], (phrase, o)
            assert all(x not in w for x in ("left", "right")) or _cell(phrase)[1] == o["col"], (phrase, o)
            if "corner" in w or {"center", "middle"} & set(w):  # phrases that name the exact cell
                assert _cell(phrase) == (o["row"], o["col"]), (phrase, o)


def test_shapes_text_stays_in_the_vocabulary():
    s = make_shapes(1000, max_shapes=9, seed=7)
    used = {w for texts in (s.captions, *s.questions, *s.answers) for text in texts for w in words(text)}
    assert used <= set(SHAPES_VOCABULARY)
    assert set(SHAPES_VOCABULARY) <= set(VOCABULARY)
    assert all(len(words(a)) == 1 for a in ANSWERS)


def test_heldout_combinations_never_leak_into_train():
    heldout = set(HELDOUT_COMBINATIONS)
    assert not heldout & set(TRAIN_COMBINATIONS) and len(TRAIN_COMBINATIONS) + len(heldout) == 30
    train = make_shapes(2000, split="train", max_shapes=6, seed=8)
    seen = {(o["shape"], o["color"]) for objects in train.attributes for o in objects}
    assert seen == set(TRAIN_COMBINATIONS)
    for caption, qs in zip(train.captions, train.questions, strict=True):
        for text in [caption, *qs]:  # no held-out pair is even mentioned
            w = [SYNONYMS.get(x, x) for x in words(text)]
            pairs = zip(w, w[1:], strict=False)  # "green circle"
            triples = zip(w, w[1:], w[2:], strict=False)  # "circle in green"
            mentioned = {(k, c) for c, k in pairs} | {(k, c) for k, on, c in triples if on == "in"}
            assert not mentioned & heldout, text
    test = make_shapes(500, split="heldout", seed=8)
    assert all(any((o["shape"], o["color"]) in heldout for o in objects) for objects in test.attributes)
    everything = make_shapes(2000, seed=8)
    assert {(o["shape"], o["color"]) for objects in everything.attributes for o in objects} > heldout


@pytest.mark.benchmark
def test_ten_thousand_shapes_in_five_seconds():
    start = time.perf_counter()
    s = make_shapes(10_000, seed=0)
    elapsed = time.perf_counter() - start
    assert s.images.shape == (10_000, 32, 32, 3)
    assert elapsed <= 5.0, f"10 000 samples took {elapsed:.2f} s"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n": 0}, "n"),
        ({"n": -3}, "n"),
        ({"image_size": 48}, "image_size"),
        ({"max_shapes": 10}, "max_shapes"),
        ({"max_shapes": 0}, "max_shapes"),
        ({"min_shapes": 4, "max_shapes": 3}, "min_shapes"),
        ({"min_shapes": 0}, "min_shapes"),
        ({"split": "test"}, "split"),
    ],
)
def test_shapes_bad_input_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        make_shapes(**{"n": 5, **kwargs})


def test_shapes_audio_encodes_kind_colour_size_and_count():
    s = make_shapes(400, seed=9, max_shapes=3)
    length = s.audio.shape[1] // 3
    segments = s.audio[:, : 3 * length].reshape(len(s.audio), 3, length)
    energy = (segments**2).mean(axis=2)
    for objects, e in zip(s.attributes, energy, strict=True):  # one loud slot per shape, then silence
        assert (e[: len(objects)] > 0.02).all() and (e[len(objects) :] < 0.001).all()
    # pitch is the colour, and different kinds have different harmonics at the same pitch
    frequencies = np.fft.rfftfreq(8192, 1 / s.sample_rate)
    harmonics: dict[str, list[np.ndarray]] = {}
    for i, objects in enumerate(s.attributes):
        o = objects[0]
        tone = segments[i, 0, : int(0.8 * length)]
        spectrum = np.abs(np.fft.rfft(tone * np.hanning(len(tone)), n=8192))
        peak = frequencies[spectrum.argmax()]
        assert abs(peak - TONE_HZ[o["color"]]) < 0.02 * TONE_HZ[o["color"]], o
        if o["color"] in ("red", "orange"):
            h = [spectrum[abs(frequencies - k * peak) < 0.02 * peak].max() for k in range(1, 5)]
            harmonics.setdefault(o["shape"], []).append(np.array(h) / h[0])
    means = {kind: np.mean(h, axis=0) for kind, h in harmonics.items()}
    assert len(means) == len(SHAPE_KINDS)
    assert min(np.abs(means[a] - means[b]).max() for a in means for b in means if a < b) > 0.1


# ---------------------------------------------------------------------------------------------- digits


def test_digits_fields_and_determinism():
    d = digits()
    assert d.images.shape == (1797, 8, 8) and d.images.dtype == np.float32
    assert d.images.min() >= 0 and d.images.max() == 1
    assert d.labels.dtype == np.int64 and set(d.labels.tolist()) == set(range(10))
    assert d.words == [NUMBER_WORDS[y] for y in d.labels]
    assert d.audio.dtype == np.float32 and d.audio.shape == (1797, d.sample_rate // 2)
    again, other = make_digits(seed=0), make_digits(seed=1)
    assert again.hints == d.hints and np.array_equal(again.audio, d.audio)
    assert other.hints != d.hints and not np.array_equal(other.audio, d.audio)
    assert d[5]["label"] == d.labels[5] and d[5]["hint"] == d.hints[5]


def test_digit_hints_are_partial_and_true():
    d = digits()
    groups = {frozenset(g) for g in HINT_GROUPS.values()}
    assert groups == {frozenset({0, 2, 4}), frozenset({1, 3}), frozenset({5, 7, 9}), frozenset({6, 8})}
    for label, hint in zip(d.labels.tolist(), d.hints, strict=True):
        candidates = hint_candidates(hint)
        assert label in candidates and 2 <= len(candidates) <= 3
    assert len(set(d.hints)) > 20  # varied templates
    assert {w for h in d.hints + d.words for w in words(h)} <= set(DIGITS_VOCABULARY) <= set(VOCABULARY)
    with pytest.raises(ValueError, match="hint"):
        hint_candidates("a prime number")


def test_digit_audio_varies_within_a_digit_and_is_not_silent():
    d = digits()
    sevens = d.audio[d.labels == 7][:2]
    assert not np.allclose(sevens[0], sevens[1])
    assert (d.audio.std(axis=1) > 0.06).all()


def test_add_noise():
    images = digits().images[:20]
    noisy = add_noise(images, 0.3, seed=1)
    assert noisy.dtype == np.float32 and noisy.shape == images.shape
    assert noisy.min() >= 0 and noisy.max() <= 1 and not np.allclose(noisy, images)
    assert np.array_equal(noisy, add_noise(images, 0.3, seed=1))
    assert np.array_equal(add_noise(images, 0.0), images)
    pictures = make_shapes(3).images
    assert add_noise(pictures, 0.1).dtype == np.uint8
    with pytest.raises(ValueError, match="level"):
        add_noise(images, -0.1)


# --------------------------------------------------------------------------------------------- sensors


def test_sensors_shapes_labels_and_logs():
    s = make_sensors(402, seed=0, length=96, channels=5)
    assert s.series.shape == (402, 5, 96) and s.series.dtype == np.float32
    assert s.channel_names == CHANNEL_NAMES and s.label_names == LABELS
    counts = np.bincount(s.labels, minlength=len(LABELS))
    assert counts.max() - counts.min() <= 1
    assert {w for log in s.logs for w in words(log)} <= set(SENSORS_VOCABULARY) <= set(VOCABULARY)
    assert 0.45 < s.log_kinds.count("informative") / s.n < 0.75
    assert (s.severity[s.labels == 0] == 0).all() and (s.severity[s.labels > 0] > 0).all()
    assert make_sensors(10, channels=2).series.shape == (10, 2, 128)
    assert np.array_equal(make_sensors(30, seed=3).series, make_sensors(30, seed=3).series)
    assert make_sensors(30, seed=3).logs != make_sensors(30, seed=4).logs
    for kwargs, name in [({"n": 0}, "n"), ({"length": 8}, "length"), ({"channels": 6}, "channels")]:
        with pytest.raises(ValueError, match=rf"^{name} must be"):
            make_sensors(**{"n": 4, **kwargs})


def test_sensors_fusion_beats_each_modality():
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    s = make_sensors(2000, seed=0)
    x = s.series.astype(float)
    step = np.diff(x, axis=2)
    drift = x[:, :, -16:].mean(2) - x[:, :, :16].mean(2)
    series = np.concatenate([x.std(2), np.abs(x).max(2), drift, step.std(2), np.abs(step).max(2)], axis=1)
    text = CountVectorizer().fit_transform(s.logs).toarray()

    def accuracy(features: np.ndarray) -> float:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        return model.fit(features[:1500], s.labels[:1500]).score(features[1500:], s.labels[1500:])

    alone = max(accuracy(series), accuracy(text))
    assert accuracy(np.concatenate([series, text], axis=1)) > alone + 0.02


# ------------------------------------------------------------------------------------------- tokenizer


def test_tokenizer_covers_the_vocabulary_with_one_token_per_word():
    tok = tokenizer()
    assert tokenizer() is tok  # built once per process
    unknown = tok.unk_token_id
    assert unknown not in (tok.eos_token_id, tok.bos_token_id, tok.pad_token_id)
    assert tok.eos_token_id == len(tok) - 1  # the highest id, as CLIP's argmax pooling expects
    for word in VOCABULARY:
        ids = tok(word, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and ids[0] != unknown, word
        assert tok(word.upper(), add_special_tokens=False)["input_ids"] == ids
    s = shapes()
    texts = s.captions + [q for qs in s.questions for q in qs] + digits().hints[:200] + make_sensors(50).logs
    ids = tok(texts)["input_ids"]
    assert all(x[0] == tok.bos_token_id and x[-1] == tok.eos_token_id and unknown not in x for x in ids)
    assert tok("A Photo of a RED circle.")["input_ids"] == tok("a photo of a red circle .")["input_ids"]
    assert tok("gizmo")["input_ids"] == [tok.bos_token_id, unknown, tok.eos_token_id]


def test_tokenizer_round_trips_through_save_pretrained(tmp_path):
    from transformers import AutoTokenizer

    tok = tokenizer()
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    texts = shapes().captions[:20] + ["what color is the circle?"]
    assert loaded(texts, padding=True)["input_ids"] == tok(texts, padding=True)["input_ids"]
    assert loaded.get_vocab() == tok.get_vocab()
    special = ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "model_max_length")
    assert all(getattr(loaded, name) == getattr(tok, name) for name in special)


def test_tokenizer_works_with_clip_model_and_processor():
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTextConfig,
        CLIPVisionConfig,
    )

    tok, s = tokenizer(), shapes()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tok)
    batch = processor(text=s.captions[:4], images=list(s.images[:4]), return_tensors="pt", padding=True)
    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    text_config = CLIPTextConfig(
        vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, **tiny,
    )  # fmt: skip
    config = CLIPConfig(
        text_config=text_config,
        vision_config=CLIPVisionConfig(image_size=32, patch_size=8, **tiny),
        projection_dim=8,
    )
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    with torch.no_grad():
        assert model(**batch).logits_per_image.shape == (4, 4)
        text = model.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    eos = batch["attention_mask"].sum(1) - 1  # the last real token of each caption
    assert (batch["input_ids"][torch.arange(4), eos] == tok.eos_token_id).all()
    assert torch.allclose(text.pooler_output, text.last_hidden_state[torch.arange(4), eos])


# --------------------------------------------------------------------------------------- torch wrappers


def test_shapes_dataset_and_collate():
    s = shapes()
    captions = ShapesDataset(s)
    assert len(captions) == s.n
    item = captions[3]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1 and item["text"] == s.captions[3]
    loader = torch.utils.data.DataLoader(
        captions, batch_size=8, collate_fn=functools.partial(collate, tokenizer=tokenizer())
    )
    batch = next(iter(loader))
    assert batch["image"].shape == (8, 3, 32, 32) and batch["audio"].shape == (8, s.audio.shape[1])
    assert batch["input_ids"].shape == batch["attention_mask"].shape and batch["input_ids"].shape[0] == 8
    assert isinstance(batch["text"], list) and isinstance(batch["attributes"], list)
    assert batch["index"].tolist() == list(range(8))

    vqa = ShapesDataset(s, task="vqa")
    assert len(vqa) == s.n * len(QUESTION_TYPES)
    batch = collate([vqa[i] for i in range(10)], tokenizer=tokenizer(), max_length=24)
    assert batch["input_ids"].shape == (10, 24)
    assert batch["answer_id"].tolist() == [ANSWERS.index(a) for a in s.answers[0] + s.answers[1]]
    assert batch["question_type"] == list(QUESTION_TYPES) * 2 and batch["text"][:5] == s.questions[0]
    with pytest.raises(ValueError, match="task"):
        ShapesDataset(s, task="segmentation")


def test_digits_dataset_and_collate():
    d = digits()
    batch = collate([DigitsDataset(d, text="word")[i] for i in range(6)])
    assert batch["image"].shape == (6, 1, 8, 8) and batch["label"].dtype == torch.int64
    assert batch["label"].tolist() == d.labels[:6].tolist() and batch["text"] == d.words[:6]
    assert "input_ids" not in batch
    assert DigitsDataset(d)[0]["text"] == d.hints[0]
