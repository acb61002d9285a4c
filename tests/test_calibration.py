"""Calibration, temperature scaling and abstention (Chapter 12): checked against direct computations."""

from __future__ import annotations

import pytest
import torch
from mmbook import calibration as cal


def _toy(n: int = 400, c: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    truth = torch.randint(0, c, (n,), generator=g)
    scores = 0.1 * torch.randn(n, c, generator=g, dtype=torch.float64)
    scores[torch.arange(n), truth] += 0.15
    return scores, truth


def test_ece_matches_a_loop_over_bins() -> None:
    scores, truth = _toy()
    probs = torch.softmax(scores / 0.05, 1)
    conf, pred = probs.max(1)
    total = 0.0
    for k in range(10):
        inside = (conf > k / 10) & (conf <= (k + 1) / 10)
        if inside.any():
            gap = pred[inside].eq(truth[inside]).double().mean() - conf[inside].mean()
            total += inside.double().mean().item() * abs(gap.item())
    assert cal.expected_calibration_error(probs, truth) == pytest.approx(total, abs=1e-9)
    bins = cal.reliability(probs, truth)
    assert int(bins.count.sum()) == len(truth)


def test_ece_is_zero_when_confidence_equals_accuracy() -> None:
    probs = torch.tensor([[0.5, 0.5]] * 4, dtype=torch.float64)
    truth = torch.tensor([0, 1, 0, 1])
    assert cal.expected_calibration_error(probs, truth) == pytest.approx(0.0)
    wrong = torch.tensor([[0.9, 0.1]] * 4, dtype=torch.float64)
    assert cal.expected_calibration_error(wrong, torch.ones(4, dtype=torch.long)) == pytest.approx(0.9)


def test_nll_gradient_matches_autograd() -> None:
    scores, truth = _toy()
    t = torch.tensor(0.07, dtype=torch.float64, requires_grad=True)
    logits = scores / t
    loss = (logits.logsumexp(1) - logits.gather(1, truth[:, None]).squeeze(1)).mean()
    loss.backward()
    assert cal.nll_gradient(scores, truth, 0.07) == pytest.approx(t.grad.item(), rel=1e-9)
    assert cal.nll(scores, truth, 0.07) == pytest.approx(loss.item(), rel=1e-12)


def test_fitted_temperature_matches_grid_and_lbfgs() -> None:
    scores, truth = _toy()
    fitted = cal.fit_temperature(scores, truth)
    grid = torch.linspace(0.01, 0.5, 4901)
    best = grid[torch.tensor([cal.nll(scores, truth, float(t)) for t in grid]).argmin()].item()
    assert fitted == pytest.approx(best, abs=2e-4)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = scores / log_t.exp()
        loss = (logits.logsumexp(1) - logits.gather(1, truth[:, None]).squeeze(1)).mean()
        loss.backward()
        return loss

    opt.step(closure)
    assert fitted == pytest.approx(log_t.exp().item(), rel=1e-4)
    assert cal.nll_gradient(scores, truth, fitted) == pytest.approx(0.0, abs=1e-8)


def test_temperature_scaling_lowers_ece_of_an_overconfident_model() -> None:
    scores, truth = _toy(n=2000)
    hot = torch.softmax(scores / 0.01, 1)
    fitted = torch.softmax(scores / cal.fit_temperature(scores, truth), 1)
    assert cal.expected_calibration_error(fitted, truth) < cal.expected_calibration_error(hot, truth)


def test_risk_coverage_and_abstain() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.45, 0.55]], dtype=torch.float64)
    truth = torch.tensor([0, 1, 1, 0])
    rc = cal.risk_coverage(probs, truth)
    assert rc.coverage.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert rc.risk.tolist() == pytest.approx([0.0, 0.5, 1 / 3, 0.5])
    assert rc.area == pytest.approx((0 + 0.5 + 1 / 3 + 0.5) / 4)
    assert cal.abstain(probs, 0.7).tolist() == [0, 0, -1, -1]


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="scores must be"):
        cal.nll(torch.zeros(3), torch.zeros(3, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match="n_bins"):
        cal.reliability(torch.ones(2, 2) / 2, torch.zeros(2, dtype=torch.long), 0)
