"""mmbook.prune: magnitude pruning with torch.nn.utils.prune and structured pruning of MLP channels (Chapter 13)."""

from __future__ import annotations

import pytest
import torch
from mmbook import prune as p
from torch import nn


class Mlp(nn.Module):
    def __init__(self, width: int = 8, hidden: int = 32) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.nn.functional.gelu(self.fc1(x)))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.mlp1, self.mlp2 = Mlp(), Mlp()
        self.head = nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids)
        return self.head(h + self.mlp2(h + self.mlp1(h)))


@pytest.fixture
def net() -> Net:
    torch.manual_seed(0)
    return Net().eval()


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_sparsity_is_exact_and_the_original_is_untouched(net: Net, scope: str) -> None:
    pruned = p.magnitude_prune(net, 0.75, scope=scope)
    assert p.weight_sparsity(pruned) == pytest.approx(0.75, abs=1 / 600)
    assert p.weight_sparsity(net) == 0.0
    assert not any(name.endswith("_orig") for name, _ in pruned.named_parameters())  # masks made permanent
    if scope == "layer":
        for name in ("mlp1.fc1", "mlp2.fc2", "head"):
            assert p.weight_sparsity(pruned, [name]) == pytest.approx(0.75, abs=0.05)


def test_global_pruning_removes_the_smallest_weights(net: Net) -> None:
    pruned = p.magnitude_prune(net, 0.5)
    weights = torch.cat([m.weight.detach().flatten() for m in pruned.modules() if type(m) is nn.Linear])
    originals = torch.cat([m.weight.detach().flatten() for m in net.modules() if type(m) is nn.Linear])
    kept = originals[weights != 0].abs()
    assert float(kept.min()) >= float(originals[weights == 0].abs().max())


def test_structured_pruning_keeps_shapes_and_equals_the_masked_dense_model(net: Net) -> None:
    small = p.prune_mlp_channels(net, 0.25)
    masked = p.mask_mlp_channels(net, 0.25)
    assert small.mlp1.fc1.weight.shape == (8, 8) and small.mlp1.fc2.weight.shape == (8, 8)
    ids = torch.arange(10)[None].repeat(3, 1)
    with torch.no_grad():
        assert small(ids).shape == net(ids).shape
        assert torch.allclose(small(ids), masked(ids), atol=1e-6)
        assert not torch.allclose(small(ids), net(ids), atol=1e-3)
        assert torch.equal(p.prune_mlp_channels(net, 1.0)(ids), net(ids))
    assert sum(x.numel() for x in small.parameters()) < sum(x.numel() for x in net.parameters())


def test_kept_channels_are_the_strongest(net: Net) -> None:
    block = net.mlp1
    kept = p.kept_channels(block, 0.5)
    score = (block.fc1.weight.abs().sum(1) * block.fc2.weight.abs().sum(0)).detach()
    assert len(kept) == 16 and torch.equal(kept, kept.sort().values)
    dropped = torch.ones(32, dtype=torch.bool)
    dropped[kept] = False
    assert float(score[kept].min()) >= float(score[dropped].max())


def test_unsupported_modules_and_bad_amounts_are_named(net: Net) -> None:
    with pytest.raises(TypeError, match=r"'embed'.*Embedding"):
        p.magnitude_prune(net, 0.5, layers=["embed"])
    with pytest.raises(KeyError, match="nope"):
        p.magnitude_prune(net, 0.5, layers=["nope"])
    with pytest.raises(ValueError, match="amount"):
        p.magnitude_prune(net, 1.0)
    with pytest.raises(ValueError, match="scope"):
        p.magnitude_prune(net, 0.5, scope="row")
    with pytest.raises(TypeError, match=r"'head'.*Linear is not an MLP"):
        p.prune_mlp_channels(net, 0.5, blocks=["head"])
    with pytest.raises(ValueError, match="no MLP"):
        p.prune_mlp_channels(nn.Sequential(nn.Linear(2, 2)), 0.5)
    with pytest.raises(ValueError, match="no nn.Linear"):
        p.magnitude_prune(nn.Sequential(nn.Conv1d(2, 2, 1)), 0.5)
    with pytest.raises(ValueError, match="keep"):
        p.prune_mlp_channels(net, 0.0)
