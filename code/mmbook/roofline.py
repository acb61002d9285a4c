"""What this machine can do: matmul throughput, memory bandwidth, FLOPs and the roofline (Chapter 13).

- :func:`matmul_gflops` and :func:`copy_bandwidth` measure the two ceilings of the roofline model;
- :func:`roofline` is the attainable rate ``min(peak, bandwidth × intensity)`` and :func:`matmul_intensity`
  the arithmetic intensity of one matrix product;
- :func:`transformer_flops` counts the forward FLOPs of a Transformer by its shape, :func:`counted_flops`
  asks PyTorch's ``FlopCounterMode``, and :func:`traffic` counts what the operators of a call read and write;
- :func:`predicted_seconds` turns FLOPs, bytes and operator count into a time to compare with a measured one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from mmbook.env import torch_threads
from mmbook.timing import fastest

#: Bytes of one float32 number.
FLOAT32_BYTES = 4


def matmul_gflops(n: int, *, threads: int = 1, repeats: int = 5) -> float:
    """GFLOP/s of one ``n×n @ n×n`` float32 product on ``threads`` threads, from the fastest of ``repeats``
    runs (``2n³`` FLOPs per product) (Chapter 13)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    with torch_threads(threads):
        seconds = fastest(lambda: torch.matmul(a, b, out=out), repeats=repeats)
    return 2 * n**3 / seconds / 1e9


def copy_bandwidth(megabytes: int = 256, *, threads: int = 1, repeats: int = 5) -> float:
    """GB/s of copying a float32 tensor of ``megabytes`` MB into another one on ``threads`` threads: each copy
    reads and writes every byte once, so it moves ``2 × megabytes`` (Chapter 13)."""
    src = torch.randn(megabytes * 2**20 // FLOAT32_BYTES)
    dst = torch.empty_like(src)
    with torch_threads(threads):
        seconds = fastest(lambda: dst.copy_(src), repeats=repeats)
    return 2 * src.numel() * FLOAT32_BYTES / seconds / 1e9


def matmul_intensity(m: int, k: int, n: int, bytes_per_number: int = FLOAT32_BYTES) -> float:
    """FLOPs per byte of an ``(m, k) @ (k, n)`` product that reads both factors and writes the result once:
    ``2mkn / (bytes_per_number · (mk + kn + mn))`` (Chapter 13)."""
    return 2 * m * k * n / (bytes_per_number * (m * k + k * n + m * n))


def roofline(intensity: float, peak_gflops: float, bandwidth_gbs: float) -> float:
    """Attainable GFLOP/s at ``intensity`` FLOP/byte: ``min(peak, bandwidth × intensity)`` (Chapter 13)."""
    return min(peak_gflops, bandwidth_gbs * intensity)


def transformer_flops(tokens: int, hidden: int, layers: int, intermediate: int, *, mlp_matrices: int = 2,
                      vocab: int = 0) -> int:  # fmt: skip
    """Forward FLOPs of ``layers`` Transformer layers on a sequence of ``tokens`` tokens, plus an output
    layer over ``vocab`` words: ``L(8Td² + 4T²d + 2·m·Tdf) + 2TdV`` with ``m`` MLP matrices of width ``f``
    (2 for GPT-2 and CLIP, 3 for SwiGLU) (Chapter 13)."""
    t, d, f = tokens, hidden, intermediate
    per_layer = 8 * t * d * d + 4 * t * t * d + 2 * mlp_matrices * t * d * f
    return layers * per_layer + 2 * t * d * vocab


def _cpu_attention_flops(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_attention_backward_flops(grad_out: Any, query: Any, key: Any, value: Any, *args: Any,
                                  **kwargs: Any) -> int:  # fmt: skip
    return sdpa_backward_flop_count(grad_out, query, key, value)


#: FLOP formulas for the CPU attention kernels, which ``FlopCounterMode`` leaves out (it counts them as 0):
#: the same as for the GPU kernels, ``4·T_q·T_k·d`` per head forward and twice that backward.
CPU_ATTENTION_FLOPS: dict[Any, Callable[..., int]] = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward_flops,
}


def counted_flops(fn: Callable[[], Any], *, cpu_attention: bool = True) -> int:
    """FLOPs of ``fn()`` as PyTorch's ``FlopCounterMode`` counts them (matrix products, convolutions and
    attention; element-wise operations count zero), with :data:`CPU_ATTENTION_FLOPS` added unless
    ``cpu_attention`` is false (Chapter 13)."""
    mapping = CPU_ATTENTION_FLOPS if cpu_attention else {}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn()
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class Traffic:
    """What the operators of one call touch: ``bytes`` read and written, counted per operator as if nothing
    stayed in cache, and the number of ``operators`` dispatched (Chapter 13)."""

    bytes: int
    operators: int


class _TrafficMode(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.operators = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        tensors = [x for x in tree_flatten((args, kwargs, out))[0] if isinstance(x, torch.Tensor)]
        self.bytes += sum(x.numel() * x.element_size() for x in tensors)
        self.operators += 1
        return out


def traffic(fn: Callable[[], Any]) -> Traffic:
    """The :class:`Traffic` of ``fn()``: every tensor an operator reads or writes counts once per operator,
    an upper bound on the memory traffic of unfused operators (Chapter 13)."""
    mode = _TrafficMode()
    with mode:
        fn()
    return Traffic(mode.bytes, mode.operators)


def operator_overhead(*, threads: int = 1, repeats: int = 2000) -> float:
    """Seconds of one PyTorch operator that does almost nothing (adding two 1-element tensors): the fixed
    cost each operator pays before any arithmetic (Chapter 13)."""
    a, b = torch.ones(1), torch.ones(1)

    def many() -> None:
        for _ in range(repeats):
            torch.add(a, b)

    with torch_threads(threads):
        return fastest(many, repeats=5) / repeats


def predicted_seconds(flops: float, traffic_bytes: float, peak_gflops: float, bandwidth_gbs: float,
                      operators: int = 0, overhead: float = 0.0) -> float:  # fmt: skip
    """Roofline time ``flops / roofline(flops / bytes)`` plus ``operators × overhead`` seconds of fixed
    per-operator cost (Chapter 13)."""
    attainable = roofline(flops / traffic_bytes, peak_gflops, bandwidth_gbs)
    return flops / (attainable * 1e9) + operators * overhead
