"""mmbook.fusion (modules, classifier) and mmbook.experiments.fusion_bench (tasks, benchmark): equations, bad input."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from mmbook.data import COLORS, POSITION_PHRASES, POSITIONS, make_shapes
from mmbook.experiments.fusion_bench import (
    COLOR_NAMES,
    Run,
    benchmark,
    color_at_task,
    digits_hint_task,
    picture_cells,
    run_one,
)
from mmbook.fusion import (
    FUSIONS,
    METHODS,
    ConcatFusion,
    CrossAttentionFusion,
    FiLMFusion,
    GatedFusion,
    LowRankFusion,
    TensorFusion,
)
from mmbook.fusion_classifier import FusionClassifier, drop_modalities, predict, train_fusion

DIMS = [5, 3, 4]


def inputs(dims=DIMS, batch=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, d, generator=g, dtype=torch.float64) for d in dims]


def build(name, dims=DIMS, out=7, **options):
    torch.manual_seed(0)
    return FUSIONS[name](dims, out, **options).double()


@pytest.mark.parametrize("name", list(FUSIONS))
def test_output_shape_and_gradients(name):
    fusion = build(name)
    xs = [x.requires_grad_() for x in inputs()]
    out = fusion(*xs)
    assert out.shape == (6, 7)
    out.sum().backward()
    assert all(x.grad is not None for x in xs)


@pytest.mark.parametrize("name", list(FUSIONS))
def test_bad_input_names_what_was_expected(name):
    fusion = build(name)
    xs = inputs()
    with pytest.raises(ValueError, match="expected 3 feature tensors"):
        fusion(*xs[:2])
    with pytest.raises(ValueError, match=r"d = \[5, 3, 4\]"):
        fusion(xs[0], xs[1], torch.randn(6, 9, dtype=torch.float64))
    with pytest.raises(ValueError, match="same batch size"):
        fusion(xs[0], xs[1], xs[2][:4])
    with pytest.raises(ValueError, match=r"\(B, M\) = \(6, 3\)"):
        fusion(*xs, mask=torch.ones(6, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="boolean"):
        fusion(*xs, mask=torch.ones(6, 3))
    with pytest.raises(ValueError, match="at least two modalities"):
        FUSIONS[name]([4], 3)


@pytest.mark.parametrize("name", list(FUSIONS))
def test_an_all_true_mask_changes_nothing(name):
    fusion = build(name)
    xs = inputs()
    assert torch.allclose(fusion(*xs), fusion(*xs, mask=torch.ones(6, 3, dtype=torch.bool)))


@pytest.mark.parametrize("name", [n for n in FUSIONS if n != "cross-attention"])
def test_a_missing_modality_does_not_reach_the_output(name):
    fusion = build(name)
    xs, other = inputs(seed=0), inputs(seed=1)
    mask = torch.ones(6, 3, dtype=torch.bool)
    mask[:, 1] = False
    changed = [xs[0], other[1], xs[2]]
    assert torch.allclose(fusion(*xs, mask=mask), fusion(*changed, mask=mask))


def test_cross_attention_masks_missing_keys():
    torch.manual_seed(0)
    fusion = CrossAttentionFusion([4, 6, 5], 8, num_heads=2, query=1)
    picture, sentence, sound = torch.randn(3, 9, 4), torch.randn(3, 6), torch.randn(3, 2, 5)
    mask = torch.tensor([[True, True, True], [False, True, True], [True, True, False]])
    out = fusion(picture, sentence, sound, mask=mask)
    assert out.shape == (3, 8)
    weights = fusion.weights  # (B, heads, 1 query token, 9 + 2 context tokens)
    assert weights.shape == (3, 2, 1, 11)
    assert fusion.spans == {0: slice(0, 9), 2: slice(9, 11)}
    assert torch.allclose(weights.sum(-1), torch.ones(3, 2, 1))
    assert torch.all(weights[1, ..., fusion.spans[0]] == 0)
    assert torch.all(weights[2, ..., fusion.spans[2]] == 0)
    changed = fusion(torch.randn(3, 9, 4), sentence, sound, mask=mask)
    assert torch.allclose(out[1], changed[1]) and not torch.allclose(out[0], changed[0])
    with pytest.raises(ValueError, match="query must index a modality"):
        CrossAttentionFusion([4, 6], 8, query=2)


def test_concat_is_a_sum_of_blocks():
    fusion = build("concat")
    xs = inputs()
    w, b = fusion.linear.weight, fusion.linear.bias
    edges = np.cumsum([0, *DIMS])
    blocks = sum(x @ w[:, edges[i] : edges[i + 1]].T for i, x in enumerate(xs)) + b
    assert torch.allclose(fusion(*xs), blocks)


def test_sum_fusion_interaction_term():
    plain, with_psi = build("sum", interaction=False), build("sum")
    xs = inputs()
    phi = sum(f(x) for f, x in zip(plain.phi, xs, strict=True))
    assert torch.allclose(plain(*xs), phi)
    psi = math.prod(u(x) for u, x in zip(with_psi.psi, xs, strict=True))
    phi = sum(f(x) for f, x in zip(with_psi.phi, xs, strict=True))
    assert torch.allclose(with_psi(*xs), phi + psi)
    one_missing = torch.tensor([[True, False, True]]).expand(6, -1)
    expected = with_psi.phi[0](xs[0]) + with_psi.phi[2](xs[2])
    assert torch.allclose(with_psi(*xs, mask=one_missing), expected)


def test_gated_fusion_with_two_modalities_is_the_gmu():
    torch.manual_seed(0)
    gmu = GatedFusion([5, 3], 4).double()
    x_v, x_t = inputs([5, 3])
    h_v, h_t = torch.tanh(gmu.hidden[0](x_v)), torch.tanh(gmu.hidden[1](x_t))
    z = torch.sigmoid(gmu.gate(torch.cat([x_v, x_t], 1)))
    assert torch.allclose(gmu(x_v, x_t), z * h_v + (1 - z) * h_t)
    assert torch.allclose(gmu.gates[:, 0], z)
    assert torch.allclose(gmu.gates.sum(1), torch.ones(6, 4, dtype=torch.float64))
    only_text = torch.tensor([[False, True]]).expand(6, -1)
    assert torch.allclose(gmu(x_v, x_t, mask=only_text), h_t)


def test_gated_fusion_gradcheck():
    gmu = build("gated")
    xs = [x.requires_grad_() for x in inputs(batch=3)]
    assert torch.autograd.gradcheck(lambda *a: gmu(*a), xs)


def test_tensor_fusion_is_the_outer_product_with_ones():
    fusion = build("tensor", dims=[2, 3])
    a, b = inputs([2, 3], batch=4)
    ones = torch.ones(4, 1, dtype=torch.float64)
    z = torch.einsum("bi,bj->bij", torch.cat([a, ones], 1), torch.cat([b, ones], 1)).flatten(1)
    assert torch.allclose(TensorFusion.outer(a, b), z)
    assert fusion.linear.weight.numel() == 7 * 3 * 4
    expected = torch.einsum("oij,bi,bj->bo", fusion.weight_tensor, torch.cat([a, ones], 1), torch.cat([b, ones], 1))
    assert torch.allclose(fusion(a, b), expected + fusion.linear.bias)


@pytest.mark.parametrize("dims", [[4, 3], [5, 3, 4], [2, 2, 2, 3]])
def test_low_rank_at_full_rank_equals_tensor_fusion(dims):
    tensor = build("tensor", dims=dims, out=5)
    low = LowRankFusion.from_tensor_fusion(tensor)
    assert low.rank == math.prod(d + 1 for d in dims[:-1])
    xs = inputs(dims)
    assert torch.allclose(low(*xs), tensor(*xs), atol=1e-12)
    assert torch.allclose(low.weight_tensor(), tensor.weight_tensor, atol=1e-12)
    mask = torch.rand(6, len(dims), generator=torch.Generator().manual_seed(0)) < 0.6
    assert torch.allclose(low(*xs, mask=mask), tensor(*xs, mask=mask), atol=1e-12)


def test_low_rank_weight_tensor_reproduces_the_module():
    low = build("low-rank", dims=[3, 4], out=5, rank=2)
    tensor = build("tensor", dims=[3, 4], out=5)
    with torch.no_grad():
        tensor.linear.weight.copy_(low.weight_tensor().flatten(1))
        tensor.linear.bias.copy_(low.bias)
    xs = inputs([3, 4])
    assert torch.allclose(low(*xs), tensor(*xs))
    parameters = sum(p.numel() for p in low.parameters())
    assert parameters == 2 * 5 * (4 + 5) + 2 + 5
    with pytest.raises(ValueError, match="rank"):
        LowRankFusion([3, 4], 5, rank=0)


def test_film_scales_and_shifts_the_target():
    film = build("film", target=1)
    xs = inputs()
    out = film(*xs)
    assert torch.allclose(out, film.gamma * film.features(xs[1]) + film.beta)
    no_condition = torch.tensor([[False, True, False]]).expand(6, -1)
    assert torch.allclose(film(*xs, mask=no_condition), film.features(xs[1]))
    assert torch.all(film.gamma == 1) and torch.all(film.beta == 0)
    with pytest.raises(ValueError, match="target"):
        FiLMFusion(DIMS, 4, target=3)


def test_picture_cells_are_the_grid_cells():
    shapes = make_shapes(20, seed=3, min_shapes=3, max_shapes=5)
    cells = (picture_cells(shapes.images).reshape(20, 9, 3, 64) + 0.5) * 255  # (N, cell, channel, pixel)
    palette = torch.tensor(list(COLORS.values()), dtype=torch.float32)
    for i, objects in enumerate(shapes.attributes):
        occupied = {POSITIONS.index(o["position"]): o["color"] for o in objects}
        for k in range(9):
            cell = cells[i, k]
            background = cell[:, 0]  # a cell's corner pixel never belongs to its shape
            distance = (cell - background[:, None]).norm(dim=0)
            if k not in occupied:
                assert distance.max() < 30  # an empty cell is background and noise
                continue
            strongest = cell[:, distance.argmax()]  # the pixel that differs most from the background
            assert list(COLORS)[(palette - strongest).norm(dim=1).argmin()] == occupied[k]


def test_color_at_task_asks_about_a_shape_that_is_there():
    task = color_at_task(50, seed=1)
    shapes = make_shapes(50, seed=1, min_shapes=3, max_shapes=5)
    assert len(task) == 150 and task.grid.shape == (150, 9, 192)
    for i in range(len(task)):
        cell, sentence = task.kind[i], task.sentences[i]
        assert any(sentence.endswith(p + "?") for p in POSITION_PHRASES[cell])
        colours = {o["color"] for o in shapes.attributes[task.image[i]] if o["position"] == cell}
        assert colours == {COLOR_NAMES[task.labels[i]]}
    again = color_at_task(50, seed=1)
    assert torch.equal(task.words, again.words) and torch.equal(task.grid, again.grid)
    noisy = color_at_task(50, seed=1, noise=0.3)
    assert torch.equal(noisy.labels, task.labels) and not torch.equal(noisy.grid, task.grid)
    with pytest.raises(ValueError, match="questions"):
        color_at_task(5, questions=4)


def test_digits_hint_task():
    task = digits_hint_task(seed=0, noise=0.5)
    assert len(task) == 1797 and task.grid.shape == (1797, 8, 8) and len(task.classes) == 10


@pytest.mark.parametrize("method", METHODS)
def test_classifier_forward(method):
    task = color_at_task(10, seed=0)
    model = FusionClassifier(method, 9, 192, len(task.vocabulary), len(task.classes))
    mask = torch.tensor([[True, True], [False, True], [True, False], [True, True]])
    logits = model(task.grid[:4], task.words[:4], mask)
    assert logits.shape == (4, 6)
    with pytest.raises(ValueError, match="method must be one of"):
        FusionClassifier("average", 9, 192, 10, 6)


def test_plain_sum_is_concatenation():
    plain, concat = build("sum", interaction=False), build("concat")
    with torch.no_grad():
        concat.linear.weight.copy_(torch.cat([f.weight for f in plain.phi], 1))
        concat.linear.bias.copy_(sum(f.bias for f in plain.phi))
    xs = inputs()
    assert torch.allclose(plain(*xs), concat(*xs))


@pytest.mark.parametrize("pool", ["flatten", "mean"])
def test_every_method_gets_the_same_tokens(pool):
    task = color_at_task(10, seed=0)
    torch.manual_seed(0)
    models = {m: FusionClassifier(m, 9, 192, len(task.vocabulary), len(task.classes), pool=pool) for m in METHODS}
    for method, model in models.items():
        assert (model.picture is None) == (method == "cross-attention")  # attention reads the tokens themselves
        tokens, pooled, sentence = model.encode(task.grid[:4], task.words[:4])
        assert tokens.shape == (4, 9, 32) and sentence.shape == (4, 32)
        if pooled is not None:
            flat = tokens.flatten(1) if pool == "flatten" else tokens.mean(1)
            assert torch.allclose(pooled, model.picture(flat))
    # mean pooling forgets the order of the tokens; flatten pooling does not
    shuffled = task.grid[:4, torch.randperm(9, generator=torch.Generator().manual_seed(1))]
    model = models["concat"]
    with torch.no_grad():
        model.position.zero_()
        same = torch.allclose(model(task.grid[:4], task.words[:4]), model(shuffled, task.words[:4]), atol=1e-6)
    assert same == (pool == "mean")
    with pytest.raises(ValueError, match="pool must be one of"):
        FusionClassifier("concat", 9, 192, 10, 6, pool="max")


def test_a_picture_only_model_never_reads_the_sentence():
    task = digits_hint_task(seed=0, noise=0.5)
    shuffled = copy.copy(task)
    shuffled.words = task.words[torch.randperm(len(task), generator=torch.Generator().manual_seed(0))]
    train, test = np.arange(300), np.arange(1200, 1400)
    no_sentence = torch.tensor([[True, False]]).expand(len(test), 2)
    models = [train_fusion("late", t, train, steps=30, present=(True, False), progress=False)[0]
              for t in (task, shuffled)]
    assert torch.equal(predict(models[0], task, test, no_sentence), predict(models[1], shuffled, test, no_sentence))
    a, b = (m.heads[0][1].weight for m in models)
    assert torch.equal(a, b)  # the picture's head learned the same, whatever the sentences said
    wide = run_one(Run("digits-hints", (("noise", 0.5), ("seed", 0)), 1200, "concat", steps=5, hidden=16))
    assert wide.fusion_parameters == ConcatFusion([32, 32], 16).linear.weight.numel() + 16


def test_drop_modalities_never_drops_both():
    mask = drop_modalities(10_000, 0.5, torch.Generator().manual_seed(0))
    assert mask.any(1).all()
    assert abs((~mask).any(1).float().mean().item() - 0.5) < 0.03


def test_training_learns_the_interaction():
    task = color_at_task(600, seed=0)
    train, test = np.flatnonzero(task.image < 400), np.flatnonzero(task.image >= 400)
    model, losses, seconds = train_fusion("cross-attention", task, train, steps=250, progress=False)
    accuracy = (predict(model, task, test) == task.labels[test]).float().mean().item()
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) and seconds > 0
    assert accuracy > 0.55  # chance is 1/6; the picture alone gives about 0.4


def test_benchmark_is_deterministic_and_measures_each_condition():
    run = Run("digits-hints", (("noise", 0.5), ("seed", 0)), 1200, "concat", steps=40, test_noise=0.8)
    first, second = run_one(run), benchmark([run], workers=1)[0]
    assert first.accuracy == second.accuracy
    assert set(first.accuracy) == {"both", "picture missing", "sentence missing", "noisy picture"}
    assert first.fusion_parameters == ConcatFusion([32, 32], 64).linear.weight.numel() + 64
