"""Cross-modal search at scale with FAISS: exact and approximate indexes over CLIP embeddings (Chapter 12).

Chapter 6's :class:`mmbook.search.SearchIndex` compares a query with every picture by one matrix product.
This module puts the same unit-length embeddings (pictures *and* captions, one table) into FAISS: the exact
``IndexFlatIP`` as the reference, and the approximate ``IndexIVFFlat`` (search ``nprobe`` of ``nlist`` cells),
``IndexHNSWFlat`` (a navigable graph, ``efSearch`` candidates) and ``IndexIVFPQ`` (codes of a few bytes per
vector). ``scripts/search_bench.py`` runs the million-vector sweep.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from mmbook import contrastive
from mmbook.errors import InputError
from mmbook.search import SearchIndex

#: The index kinds :func:`build_index` makes, and the knob :func:`set_effort` turns for each.
KINDS = ("flat", "ivf", "hnsw", "ivfpq")
EFFORT = {"flat": "none", "ivf": "nprobe", "hnsw": "efSearch", "ivfpq": "nprobe"}


def unit_rows(vectors: Any) -> np.ndarray:
    """``vectors`` as a C-contiguous float32 array with rows of length one (Chapter 12), FAISS's input."""
    array = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if array.ndim != 2 or not np.isfinite(array).all():
        raise InputError(f"Expected a finite N×d array of vectors; got shape {array.shape}.")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InputError("A zero vector has no direction, so no cosine similarity.")
    return np.ascontiguousarray(array / norms)


@dataclass
class Corpus:
    """Pictures and captions of shapes-world scenes, embedded into one table (Chapter 12).

    Row ``r`` is the picture of scene ``r`` for ``r < n`` and the caption of scene ``r - n`` after that;
    :meth:`item` and :meth:`modality` decode a row.
    """

    gallery: SearchIndex
    vectors: np.ndarray

    @classmethod
    def build(cls, model: Any, processor: Any, images: np.ndarray, captions: Sequence[str]) -> Corpus:
        """Embed every picture (through :meth:`SearchIndex.build`) and every caption once."""
        gallery = SearchIndex.build(model, processor, images, list(captions))
        ids, mask = contrastive.tokens(processor, list(captions))
        text = contrastive.embed_texts(model, ids.to(model.device), mask.to(model.device))
        table = np.concatenate([gallery.embeddings.cpu().numpy(), text.cpu().numpy()])
        return cls(gallery, unit_rows(table))

    def __len__(self) -> int:
        return len(self.vectors)

    def item(self, row: int) -> int:
        """The scene that row ``row`` of the table shows or describes."""
        return int(row) % len(self.gallery.images)

    def modality(self, row: int) -> str:
        """``"picture"`` or ``"caption"``: what row ``row`` of the table is."""
        return "picture" if int(row) < len(self.gallery.images) else "caption"

    def embed_query(self, query: Any) -> np.ndarray:
        """A 1×d unit vector for a text (checked as Chapter 6's search checks it) or a picture (any size or
        mode :func:`mmbook.inputs.to_rgb` accepts); an :class:`~mmbook.errors.InputError` otherwise."""
        model, processor = self.gallery.model, self.gallery.processor
        if isinstance(query, str) or query is None:
            ids, mask = contrastive.tokens(processor, [self.gallery.check_query(query)])
            vector = contrastive.embed_texts(model, ids.to(model.device), mask.to(model.device))
        else:
            from mmbook.inputs import to_rgb

            picture = np.asarray(to_rgb(query))[None]
            pixels = contrastive.pixels(processor, picture).to(model.device)
            vector = contrastive.embed_images(model, pixels)
        return unit_rows(vector.cpu().numpy())


def synthetic(base: np.ndarray, n: int, noise: float = 1.0, seed: int = 0, batch: int = 100_000) -> np.ndarray:
    """``n`` unit vectors scattered around random rows of ``base``: row + ``noise``·N(0, I/d), renormalised
    (Chapter 12). They keep the clusters of the real embeddings, which is what approximate indexes exploit;
    uniformly random directions would have none."""
    rng = np.random.default_rng(seed)
    d = base.shape[1]
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, batch):
        size = min(batch, n - start)
        rows = base[rng.integers(0, len(base), size)]
        jitter = rng.standard_normal((size, d), dtype=np.float32) * np.float32(noise / np.sqrt(d))
        out[start : start + size] = rows + jitter
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def default_nlist(n: int) -> int:
    """The number of IVF cells: about ``4·sqrt(n)`` rounded down to a power of two, and at most ``n / 39`` so
    that k-means sees the 39 points per cell FAISS asks for (Chapter 12)."""
    cells = 2 ** int(np.log2(4 * np.sqrt(max(n, 1))))
    while cells > 1 and 39 * cells > n:
        cells //= 2
    return cells


def build_index(kind: str, vectors: np.ndarray, *, nlist: int | None = None, hnsw_m: int = 32,
                ef_construction: int = 80, pq_m: int = 16, train_size: int = 100_000,
                seed: int = 0) -> faiss.Index:
    """A FAISS index of ``kind`` (one of :data:`KINDS`) over unit ``vectors``, scored by inner product
    (Chapter 12).

    IVF indexes train their coarse quantizer (k-means, ``nlist`` cells) on at most ``train_size`` rows;
    ``ivfpq`` stores ``pq_m`` bytes per vector (``pq_m`` sub-vectors of 8-bit codes).
    """
    if kind not in KINDS:
        raise InputError(f"Unknown index kind {kind!r}; choose one of {', '.join(KINDS)}.")
    x = unit_rows(vectors)
    n, d = x.shape
    ip = faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        index: faiss.Index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m, ip)
        index.hnsw.efConstruction = ef_construction
    else:
        cells = nlist or default_nlist(n)
        quantizer = faiss.IndexFlatIP(d)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, d, cells, ip)
        else:
            index = faiss.IndexIVFPQ(quantizer, d, cells, pq_m, 8, ip)
        index.cp.seed = seed
        sample = x if n <= train_size else x[np.random.default_rng(seed).choice(n, train_size, replace=False)]
        index.train(sample)
    index.add(x)
    return index


def set_effort(index: faiss.Index, effort: int) -> faiss.Index:
    """Set how hard ``index`` searches: ``nprobe`` for IVF, ``efSearch`` for HNSW, nothing for a flat index
    (Chapter 12). Returns ``index``."""
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = int(effort)
    elif isinstance(index, faiss.IndexIVF):
        index.nprobe = int(effort)
    return index


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean over queries of ``|found[:k] ∩ truth[:k]| / k``: the share of the exact top ``k`` that the
    approximate index returns (Chapter 12)."""
    hits = [len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / k


def index_bytes(index: faiss.Index) -> int:
    """Size of ``index`` serialised, in bytes: what it costs in memory and on disk (Chapter 12)."""
    return int(faiss.serialize_index(index).size)


def queries_per_second(index: faiss.Index, queries: np.ndarray, k: int, min_seconds: float = 0.2) -> float:
    """Queries per second of ``index.search`` on the batch ``queries`` (repeated for ``min_seconds``)
    (Chapter 12)."""
    done, start = 0, time.perf_counter()
    while True:
        index.search(queries, k)
        done += len(queries)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def effort_curve(index: faiss.Index, queries: np.ndarray, truth: np.ndarray, efforts: Sequence[int],
                 k: int = 10, min_seconds: float = 0.2) -> list[dict[str, float]]:
    """Recall@``k`` against ``truth`` (the exact top ``k``) and queries per second at each effort
    (Chapter 12)."""
    rows = []
    for effort in efforts:
        set_effort(index, effort)
        _, found = index.search(queries, k)
        rows.append({"effort": int(effort), "recall": recall_at_k(found, truth, k),
                     "qps": queries_per_second(index, queries, k, min_seconds)})
    return rows


def save_index(index: faiss.Index, path: str | Path) -> Path:
    """Write ``index`` to a new file ``path`` (Chapter 12). Refuses an existing file, and writes through a
    temporary file in the same folder, so no reader ever sees half an index."""
    path = Path(path)
    if path.exists():
        raise InputError(f"{path} already exists; choose another name or delete it first.")
    if not path.parent.is_dir():
        raise InputError(f"The folder {path.parent} does not exist.")
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".part")
    os.close(handle)
    try:
        faiss.write_index(index, temporary)
        os.link(temporary, path)  # fails, instead of overwriting, if the name appeared meanwhile
    except FileExistsError:
        raise InputError(f"{path} already exists; choose another name or delete it first.") from None
    finally:
        os.unlink(temporary)
    return path


def load_index(path: str | Path, dim: int | None = None) -> faiss.Index:
    """Read an index written by :func:`save_index` (Chapter 12); a missing, unreadable or corrupt file, or
    one of another dimension than ``dim``, is an :class:`~mmbook.errors.InputError` that says so."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"No index file at {path}; build one and save it with save_index first.")
    try:
        index = faiss.read_index(str(path))
    except (RuntimeError, MemoryError) as error:  # a corrupt size field can ask for terabytes
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{path} is not a readable FAISS index (corrupt or truncated?): {first[:200]}") from None
    if dim is not None and index.d != dim:
        raise InputError(f"{path} holds {index.d}-dimensional vectors; this model makes {dim}-dimensional ones.")
    return index


def scaling(base: np.ndarray, sizes: Sequence[int], queries: np.ndarray, efforts: dict[str, Sequence[int]],
            k: int = 10, seed: int = 0, min_seconds: float = 0.2, **options: Any) -> list[dict[str, Any]]:
    """Build time, bytes, and recall@``k`` with queries per second at each effort, of each index kind at each
    database size (Chapter 12; ``scripts/search_bench.py`` runs it up to a million vectors).

    ``efforts`` maps a kind of :data:`KINDS` to the efforts to measure (any one value for ``"flat"``); the
    database at size ``n`` is ``synthetic(base, n, seed=seed)``, and recall is measured against the exact
    top ``k`` at that size. ``options`` go to :func:`build_index`.
    """
    rows: list[dict[str, Any]] = []
    for n in sizes:
        data = synthetic(base, n, seed=seed)
        _, truth = build_index("flat", data).search(queries, k)
        for kind, values in efforts.items():
            start = time.perf_counter()
            index = build_index(kind, data, seed=seed, **options)
            built = time.perf_counter() - start
            size = index_bytes(index)
            for row in effort_curve(index, queries, truth, values, k, min_seconds):
                rows.append({"n": n, "kind": kind, **row, "build_s": built, "bytes": size})
            del index
    return rows


__all__ = [
    "EFFORT", "KINDS", "Corpus", "build_index", "default_nlist", "effort_curve", "index_bytes", "load_index",
    "queries_per_second", "recall_at_k", "save_index", "scaling", "set_effort", "synthetic", "unit_rows",
]


#: The last full run of ``scripts/search_bench.py --ship``, shipped with the package (Chapter 12 plots it).
BENCHMARK = Path(__file__).with_name("experiments") / "search_bench.json"


def shipped_benchmark(path: Path = BENCHMARK) -> dict[str, Any]:
    """The shipped sweep from 10k to 1M vectors: ``rows`` as :func:`scaling` returns them, ``best`` (the
    fastest approximate index at the target recall at the largest size), ``met`` and ``measured``."""
    import json

    return json.loads(path.read_text())
