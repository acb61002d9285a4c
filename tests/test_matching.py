"""Chapter 7: pairs and hard negatives, the matchers (from scratch and on the tiny CLIP), their losses,
metrics, compute and cache."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmbook import matching, zoo
from mmbook.contrastive import scene_key
from mmbook.data import COLORS, POSITIONS, SHAPE_KINDS, SHAPES_VOCABULARY, TRAIN_COMBINATIONS, tokenizer, words
from mmbook.data.pairs import (
    HARD_KINDS,
    MASK_ID,
    NEGATIVE_KINDS,
    content_word_ids,
    encode_pairs,
    hard_negative,
    make_pairs,
    mask_content_words,
    pixels,
    tokenize,
)
from mmbook.data.shapes import COLOR_WORDS, KIND_WORDS
from mmbook.experiments import book_matcher
from mmbook.losses import bce_grad, bce_with_logits
from mmbook.matching import AlignedMatcher, SingleStreamMatcher
from mmbook.metrics import auc_trapezoid, best_threshold, binary_metrics, roc_auc, roc_curve
from sklearn import metrics

SCENE = [
    {"shape": "circle", "color": "red", "size": "large", "position": "top left", "row": 0, "col": 0},
    {"shape": "square", "color": "blue", "size": "small", "position": "center", "row": 1, "col": 1},
]


def _model(seed: int = 0, dim: int = 16) -> SingleStreamMatcher:
    torch.manual_seed(seed)
    return SingleStreamMatcher(len(tokenizer()), dim, layers=2, heads=2).eval()


# ----------------------------------------------------------------------------------------------------
# pairs and hard negatives


@pytest.mark.parametrize("kind", HARD_KINDS)
def test_a_hard_negative_changes_exactly_one_attribute_of_one_shape(kind: str) -> None:
    rng = random.Random(0)
    for _ in range(50):
        changed, record = hard_negative(SCENE, kind, rng, TRAIN_COMBINATIONS)
        assert len(changed) == len(SCENE) and record["kind"] == kind and record["old"] != record["new"]
        before = Counter((o["shape"], o["color"], o["position"]) for o in SCENE)
        after = Counter((o["shape"], o["color"], o["position"]) for o in changed)
        (gone,), (new,) = list(before - after), list(after - before)  # exactly one shape differs ...
        field = {"shape": 0, "color": 1, "position": 2}[kind]
        assert [a != b for a, b in zip(gone, new, strict=True)] == [i == field for i in range(3)]  # ... in one field
        assert (new[0], new[1]) in TRAIN_COMBINATIONS
        assert [3 * o["row"] + o["col"] for o in changed] == sorted(POSITIONS.index(o["position"]) for o in changed)
    assert SCENE[0]["color"] == "red" and SCENE[1]["position"] == "center"  # the input is left alone


def test_hard_negative_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        hard_negative(SCENE, "size", random.Random(0))
    with pytest.raises(ValueError, match="at least one shape"):
        hard_negative([], "color", random.Random(0))
    full = [{"shape": "circle", "color": "red", "position": p, "row": i // 3, "col": i % 3}
            for i, p in enumerate(POSITIONS)]
    with pytest.raises(ValueError, match="no position change is possible"):
        hard_negative(full, "position", random.Random(0))


def test_pairs_are_balanced_paired_and_deterministic() -> None:
    pairs = make_pairs(200, seed=5)
    assert len(pairs) == 400 and pairs.images.shape == (400, 32, 32, 3) and pairs.images.dtype == np.uint8
    assert pairs.labels.tolist() == [1, 0] * 200
    assert Counter(pairs.kinds[1::2]) == {kind: 50 for kind in NEGATIVE_KINDS}
    assert set(pairs.kinds[0::2]) == {"match"}
    np.testing.assert_array_equal(pairs.images[0::2], pairs.images[1::2])  # one picture, two captions
    assert (pairs.scene[0::2] == np.arange(200)).all() and (pairs.scene[1::2] == np.arange(200)).all()
    again = make_pairs(200, seed=5)
    assert again.captions == pairs.captions and np.array_equal(again.images, pairs.images)
    assert make_pairs(200, seed=6).captions != pairs.captions


def test_every_negative_states_something_false_in_words_the_tokenizer_knows() -> None:
    pairs = make_pairs(400, seed=7)
    tok = tokenizer()
    vocab = set(tok.get_vocab())
    synonyms = {**COLOR_WORDS, **KIND_WORDS}
    for i in range(1, len(pairs), 2):
        caption, change = pairs.captions[i], pairs.changes[i]
        tokens = words(caption)
        assert set(tokens) <= set(SHAPES_VOCABULARY) and set(tokens) <= vocab
        assert tok.unk_token_id not in tok(caption)["input_ids"]
        assert caption != pairs.captions[i - 1]
        if pairs.kinds[i] == "random":
            assert change is None
        else:
            assert change["kind"] == pairs.kinds[i]
            if change["kind"] in ("color", "shape"):  # the new colour or kind is named in the caption
                assert set(synonyms[change["new"]]) & set(tokens)
            names = {w for o in pairs.attributes[pairs.scene[i]] for w in (o["color"], o["shape"])}
            assert change["old"] in names | set(POSITIONS)
        if pairs.kinds[i] in HARD_KINDS:  # the stated scene is the picture's with one attribute of one shape changed
            before = Counter((o["shape"], o["color"], o["position"]) for o in pairs.attributes[pairs.scene[i]])
            after = Counter((o["shape"], o["color"], o["position"]) for o in pairs.stated[i])
            assert sum((before - after).values()) == sum((after - before).values()) == 1
        assert scene_key(pairs.stated[i]) != scene_key(pairs.attributes[pairs.scene[i]])
        assert pairs.stated[i - 1] is pairs.attributes[pairs.scene[i]]
    # a random negative is another scene's caption, and a scene that states something else
    rows = [i for i in range(1, len(pairs), 2) if pairs.kinds[i] == "random"]
    keys = {tuple(sorted(scene_key(a))) for a in pairs.attributes}
    assert rows and all(pairs.captions[i] not in pairs.captions[i - 1 : i] for i in rows)
    assert len(keys) > 300


def test_train_split_pairs_never_name_a_heldout_combination() -> None:
    pairs = make_pairs(300, seed=8, split="train")
    for change in filter(None, pairs.changes):
        assert change["kind"] == "position" or change["new"] in (*COLORS, *SHAPE_KINDS)
    for objects in pairs.attributes:
        assert all((o["shape"], o["color"]) in TRAIN_COMBINATIONS for o in objects)


def test_make_pairs_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="negatives must be"):
        make_pairs(10, negatives=("random", "size"))
    with pytest.raises(ValueError, match="negatives must be"):
        make_pairs(10, negatives=())
    assert set(make_pairs(12, negatives=("color",)).kinds[1::2]) == {"color"}
    with pytest.raises(ValueError, match="scenes that differ"):
        make_pairs(1)


# ----------------------------------------------------------------------------------------------------
# the model


def test_shapes_of_inputs_and_outputs() -> None:
    pairs = make_pairs(6, seed=1)
    data = encode_pairs(pairs)
    pixel_values, ids, mask, labels = data.batch(torch.arange(len(data)))
    assert pixel_values.shape == (12, 3, 48, 48) and -1 <= pixel_values.min() and pixel_values.max() <= 1
    assert ids.shape == mask.shape and labels.dtype == torch.float32
    model = _model()
    out = model(pixel_values, ids, mask)
    length = 1 + ids.shape[1] + 9
    assert out.logits.shape == (12,) and out.hidden.shape == (12, length, 16) and out.text_length == ids.shape[1]
    assert len(out.attentions) == 2 and out.attentions[0].shape == (12, 2, length, length)
    torch.testing.assert_close(out.attentions[-1].sum(-1), torch.ones(12, 2, length))
    assert out.cls_to_patches().shape == (12, 9) and (out.cls_to_patches().sum(1) <= 1 + 1e-6).all()
    assert out.text_features().shape == (12, ids.shape[1], 16)
    assert model.word_head(out.text_features()).shape == (12, ids.shape[1], len(tokenizer()))


def test_the_model_refuses_inputs_it_cannot_read() -> None:
    model = _model()
    ids, mask = tokenize(["a red circle in the center"])
    with pytest.raises(ValueError, match="expected pixel_values"):
        model(torch.zeros(1, 3, 32, 32), ids, mask)
    with pytest.raises(ValueError, match="at most 48 tokens"):
        model(torch.zeros(1, 3, 48, 48), torch.ones(1, 49, dtype=torch.long), torch.ones(1, 49))
    with pytest.raises(ValueError, match="must have the shape of input_ids"):
        model(torch.zeros(1, 3, 48, 48), ids, mask[:, :-1])
    with pytest.raises(ValueError, match=r"expected uint8 pictures \(B, H, W, 3\)"):
        pixels(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="at most 48 tokens"):
        tokenize(["red " * 60])


def test_padding_changes_nothing() -> None:
    model = _model(seed=3)
    picture = pixels(make_pairs(2, seed=2).images[:1])
    short = "a red circle in the center"
    long = "there are three shapes: a red circle in the center, a blue box at the top and a cross"
    alone = model(picture, *tokenize([short]))
    ids, mask = tokenize([short, long])
    batched = model(picture.expand(2, -1, -1, -1), ids, mask)
    assert mask[0].sum() < mask.shape[1]  # the short caption is padded in the batch
    torch.testing.assert_close(batched.logits[0], alone.logits[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(batched.cls_to_patches()[0], alone.cls_to_patches()[0], atol=1e-6, rtol=1e-5)
    scrambled = ids.clone()
    scrambled[0, mask[0] == 0] = 17  # whatever sits under the mask is never read
    torch.testing.assert_close(model(picture.expand(2, -1, -1, -1), scrambled, mask).logits, batched.logits)
    padded_weights = batched.attentions[0][0, :, :, 1 : 1 + ids.shape[1]][..., mask[0] == 0]
    assert padded_weights.abs().max() == 0  # no query attends to padding


def _aligned(seed: int = 0) -> AlignedMatcher:
    clip, proc = zoo.tiny_clip()
    torch.manual_seed(seed)
    image = proc.image_processor
    return AlignedMatcher(clip, image.image_mean, image.image_std, 16, layers=2, heads=2).eval()


def test_the_aligned_matcher_reads_the_tiny_clip_and_trains_only_its_fusion() -> None:
    model, (clip, _) = _aligned(), zoo.tiny_clip()
    pairs = make_pairs(6, seed=1)
    pixel_values, ids, mask, labels = encode_pairs(pairs).batch(torch.arange(12))
    words, patches, caption, picture = model.joint_features(pixel_values, ids, mask)
    assert words.shape == (12, ids.shape[1], 64) and patches.shape == (12, 9, 64)
    torch.testing.assert_close(words.norm(dim=-1), torch.ones(12, ids.shape[1]))
    with torch.no_grad():  # CLIP's own embeddings of the same pixels: the sum of the product is its cosine
        clip_pixels = ((pixel_values + 1) / 2 - model.mean) / model.std
        image = F.normalize(clip.get_image_features(pixel_values=clip_pixels).pooler_output, dim=-1)
        text = F.normalize(clip.get_text_features(input_ids=ids, attention_mask=mask).pooler_output, dim=-1)
    torch.testing.assert_close((caption * picture).sum(-1), (image * text).sum(-1), atol=1e-5, rtol=1e-5)
    out = model.train()(pixel_values, ids, mask)
    assert not model.text_tower.training and not model.vision_tower.training
    assert out.logits.shape == (12,) and out.cls_to_patches().shape == (12, 9)
    bce_with_logits(out.logits, labels).backward()
    frozen = [*model.text_tower.parameters(), *model.vision_tower.parameters(),
              *model.text_projection.parameters(), *model.visual_projection.parameters()]
    assert all(p.grad is None and not p.requires_grad for p in frozen)
    assert model.agreement.weight.grad.abs().sum() > 0 and model.joint_in.weight.grad.abs().sum() > 0
    alone = model.eval()(pixel_values[:1], *tokenize([pairs.captions[0]])).logits[0]
    torch.testing.assert_close(alone, model(pixel_values, ids, mask).logits[0], atol=1e-5, rtol=1e-5)


def test_training_compute_is_counted_per_step() -> None:
    data = encode_pairs(make_pairs(40, seed=1))
    scratch, aligned = _model(), _aligned()
    settings = dataclasses.replace(book_matcher.MATCHER, batch_size=16)
    small = book_matcher.matcher_step_flops(scratch, data, settings, batches=2)
    double = book_matcher.matcher_step_flops(scratch, data, dataclasses.replace(settings, batch_size=32), batches=2)
    assert 0 < small and 1.6 < double / small < 2.4  # about linear in the batch size
    assert book_matcher.matcher_step_flops(aligned, data, settings, batches=2) > small  # the towers cost too
    assert all(p.grad is None for p in scratch.parameters())


# ----------------------------------------------------------------------------------------------------
# losses


def test_bce_from_scratch_equals_torch_and_is_stable() -> None:
    torch.manual_seed(0)
    logits = torch.randn(64, dtype=torch.float64) * 4
    labels = (torch.rand(64) < 0.5).double()
    torch.testing.assert_close(bce_with_logits(logits, labels), F.binary_cross_entropy_with_logits(logits, labels))
    extreme = torch.tensor([1000.0, -1000.0, 1000.0, -1000.0], dtype=torch.float64)
    wrong = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    assert torch.isfinite(bce_with_logits(extreme, wrong))
    torch.testing.assert_close(bce_with_logits(extreme, wrong), torch.tensor(500.0, dtype=torch.float64))


def test_bce_gradient_is_sigmoid_minus_label() -> None:
    torch.manual_seed(1)
    logits = torch.randn(32, dtype=torch.float64, requires_grad=True)
    labels = (torch.rand(32) < 0.5).double()
    bce_with_logits(logits, labels).backward()
    torch.testing.assert_close(logits.grad, bce_grad(logits.detach(), labels), atol=1e-15, rtol=1e-12)
    assert torch.autograd.gradcheck(lambda z: bce_with_logits(z, labels), (logits.detach().requires_grad_(),))


def test_masking_hides_at_most_one_content_word_per_caption() -> None:
    captions = ["a red circle in the center", "one shape: a violet box at the top", "is there a shape?"]
    ids, _ = tokenize(captions)
    content = torch.isin(ids, content_word_ids())
    hidden, targets = mask_content_words(ids, 1.0, torch.Generator().manual_seed(0))
    changed = hidden != ids
    assert changed.sum(1).tolist() == [1, 1, 0] and (hidden[changed] == MASK_ID).all()
    assert (changed <= content).all() and (targets[changed] == ids[changed]).all() and (targets[~changed] == -100).all()
    none, targets = mask_content_words(ids, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(none, ids) and (targets == -100).all()
    names = set(tokenizer().convert_ids_to_tokens(content_word_ids().tolist()))
    assert names == {w for ws in (*COLOR_WORDS.values(), *KIND_WORDS.values()) for w in ws}


# ----------------------------------------------------------------------------------------------------
# metrics against scikit-learn


def test_binary_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        y, p = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
        ours = binary_metrics(y, p)
        assert ours["accuracy"] == pytest.approx(metrics.accuracy_score(y, p))
        assert ours["precision"] == pytest.approx(metrics.precision_score(y, p, zero_division=0))
        assert ours["recall"] == pytest.approx(metrics.recall_score(y, p, zero_division=0))
        assert ours["f1"] == pytest.approx(metrics.f1_score(y, p, zero_division=0))
    never = binary_metrics([1, 0, 1], [0, 0, 0])  # no positive prediction: precision and F1 are 0
    assert never == {"accuracy": pytest.approx(1 / 3), "precision": 0.0, "recall": 0.0, "f1": 0.0}
    with pytest.raises(ValueError, match="threshold the scores first"):
        binary_metrics([1, 0], [0.3, 0.9])
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        binary_metrics([2, 0], [1, 0])


def test_roc_curve_and_auc_equal_sklearn_with_ties() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        y = rng.integers(0, 2, 80)
        y[:2] = [0, 1]
        scores = rng.integers(0, 12, 80) / 4  # many ties
        fpr, tpr, thresholds = roc_curve(y, scores)
        fpr_sk, tpr_sk, thresholds_sk = metrics.roc_curve(y, scores, drop_intermediate=False)
        np.testing.assert_allclose(fpr, fpr_sk)
        np.testing.assert_allclose(tpr, tpr_sk)
        np.testing.assert_allclose(thresholds[1:], thresholds_sk[1:])
        assert roc_auc(y, scores) == pytest.approx(metrics.roc_auc_score(y, scores))
        assert auc_trapezoid(fpr, tpr) == pytest.approx(roc_auc(y, scores))
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0 and roc_auc([0, 1], [0.5, 0.5]) == 0.5
    with pytest.raises(ValueError, match="both positive and negative"):
        roc_curve([1, 1], [0.2, 0.3])


def test_best_threshold_maximises_accuracy() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    scores = y + rng.normal(0, 0.8, 200)
    t = best_threshold(y, scores)
    best = ((scores >= t) == y).mean()
    assert all(((scores >= c) == y).mean() <= best for c in np.linspace(-3, 4, 300))
    assert best_threshold([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9]) == pytest.approx(0.45)


# ----------------------------------------------------------------------------------------------------
# training, the cache and the trained model


TINY = dataclasses.replace(book_matcher.MATCHER, train_scenes=60, val_scenes=20, max_steps=4, batch_size=16,
                           eval_every=2, min_steps=0)


def _use_settings(monkeypatch, settings: book_matcher.MatcherSettings) -> None:
    """Let the registry train the matcher with ``settings``, with no copy of it loaded."""
    monkeypatch.setitem(zoo.REGISTRY, "matcher", dataclasses.replace(book_matcher.MATCHER_ENTRY, settings=settings))
    zoo.forget("matcher")


def test_early_stopping_keeps_the_best_weights() -> None:
    train, val = encode_pairs(make_pairs(60, seed=1)), encode_pairs(make_pairs(20, seed=2))
    model = _model()
    history = matching.train_matcher(model, train, val, max_steps=40, batch_size=16, lr=3e-2, eval_every=2,
                                     patience=2, progress=False)
    assert history.eval_steps[0] == 2 and len(history.val_losses) == len(history.eval_steps)
    assert history.stopped_step == history.eval_steps[-1] and len(history.losses) == history.stopped_step
    best = int(np.argmin(history.val_losses))
    assert history.best_step == history.eval_steps[best]
    if history.early_stopped:
        assert history.eval_steps[-1] - history.best_step == 2 * 2
    loss, _, _ = matching.evaluate(model, val)
    assert loss == pytest.approx(history.val_losses[best], rel=1e-5)  # the kept weights are the best ones
    with pytest.raises(ValueError, match="batch_size must be between 2"):
        matching.train_matcher(model, train, val, batch_size=1000)


def test_cache_trains_loads_and_retrains_when_corrupt_or_stale(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("MMBOOK_CACHE", str(tmp_path))
    _use_settings(monkeypatch, TINY)
    try:
        first = book_matcher.matcher()
        assert zoo.trained_now("matcher") and "trained the matcher" in capsys.readouterr().out
        assert book_matcher.matcher() is first  # one shared copy
        folder = tmp_path / "models" / "matcher"
        assert (folder / "model.safetensors").is_file() and (folder / zoo.RECORD).is_file()
        zoo.forget("matcher")
        again = book_matcher.matcher()
        assert not zoo.trained_now("matcher") and "loaded the matcher from the model cache" in capsys.readouterr().out
        for name, value in first.state_dict().items():
            torch.testing.assert_close(again.state_dict()[name], value)
        assert again.history.losses == first.history.losses

        (folder / "model.safetensors").write_bytes(b"not a checkpoint")
        zoo.forget("matcher")
        book_matcher.matcher()
        out = capsys.readouterr().out
        assert zoo.trained_now("matcher") and "unusable" in out and "rebuilding" in out

        _use_settings(monkeypatch, dataclasses.replace(TINY, max_steps=2))
        stale = book_matcher.matcher()
        assert zoo.trained_now("matcher") and "saved with other training settings" in capsys.readouterr().out
        assert stale.history.stopped_step == 2
    finally:
        zoo.forget("matcher")


def test_the_trained_matcher_beats_chance_on_test_pairs() -> None:
    model = book_matcher.matcher()
    test = make_pairs(500, seed=book_matcher.TEST_SEED)
    probabilities = matching.match_probabilities(model, test.images, test.captions)
    accuracy = binary_metrics(test.labels, (probabilities >= 0.5).astype(int))["accuracy"]
    assert accuracy > 0.8
    assert roc_auc(test.labels, probabilities) > 0.93


def test_the_first_training_works_under_no_grad(monkeypatch, tmp_path) -> None:
    """The app's first request may train the matcher from inside ``torch.no_grad`` (found by CI)."""
    monkeypatch.setenv("MMBOOK_CACHE", str(tmp_path))
    _use_settings(monkeypatch, TINY)
    try:
        with torch.no_grad():
            book_matcher.matcher()
        assert zoo.trained_now("matcher")
    finally:
        zoo.forget("matcher")
