"""Chapter 12's FAISS search: the indexes against exact search, saving and loading, and the search app."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from helpers import module_client
from mmbook import vector_index as vi
from mmbook import zoo
from mmbook.apps.vector_search import HEADERS, build_vector_search_app
from mmbook.data import make_shapes
from mmbook.errors import InputError
from PIL import Image


@pytest.fixture(scope="module")
def corpus() -> vi.Corpus:
    model, processor = zoo.tiny_clip()
    scenes = make_shapes(200, seed=2)
    return vi.Corpus.build(model, processor, scenes.images, scenes.captions)


@pytest.fixture(scope="module")
def clustered() -> np.ndarray:
    centres = vi.unit_rows(np.random.default_rng(0).standard_normal((50, 16)))
    return vi.synthetic(centres, 4000, seed=1)


def test_the_table_holds_unit_pictures_then_captions(corpus) -> None:
    assert corpus.vectors.shape == (400, 64) and corpus.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(corpus.vectors, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(corpus.vectors[:200], corpus.gallery.embeddings.numpy(), atol=1e-6)
    assert (corpus.modality(0), corpus.item(0), corpus.modality(250), corpus.item(250)) == ("picture", 0, "caption", 50)


def test_inner_product_of_unit_vectors_is_cosine(corpus) -> None:
    raw = np.random.default_rng(0).standard_normal((5, 64))
    cosine = (raw @ raw.T) / np.outer(np.linalg.norm(raw, axis=1), np.linalg.norm(raw, axis=1))
    unit = vi.unit_rows(raw)
    np.testing.assert_allclose(unit @ unit.T, cosine, atol=1e-6)
    scores, _ = vi.build_index("flat", unit).search(unit, 5)
    np.testing.assert_allclose(scores, -np.sort(-cosine, axis=1), atol=1e-5)


def test_a_caption_finds_its_own_row_first(corpus) -> None:
    index = vi.build_index("flat", corpus.vectors)
    _, rows = index.search(corpus.embed_query(corpus.gallery.captions[7]), 1)
    assert corpus.modality(rows[0, 0]) == "caption" and corpus.item(rows[0, 0]) == 7


@pytest.mark.parametrize(("kind", "effort"), [("ivf", 16), ("hnsw", 64)])
def test_approximate_indexes_approach_exact_search(clustered, kind, effort) -> None:
    queries = vi.synthetic(clustered, 100, seed=2)
    _, truth = vi.build_index("flat", clustered).search(queries, 10)
    index = vi.build_index(kind, clustered, nlist=32)
    low, high = vi.effort_curve(index, queries, truth, [1, effort], min_seconds=0.01)
    assert high["recall"] >= 0.95 and high["recall"] >= low["recall"]


def test_recall_counts_the_shared_neighbours() -> None:
    assert vi.recall_at_k(np.array([[1, 2, 3, 9]]), np.array([[3, 2, 1, 0]]), 4) == 0.75


def test_product_quantization_shrinks_the_index(clustered) -> None:
    flat = vi.index_bytes(vi.build_index("flat", clustered))
    pq = vi.index_bytes(vi.build_index("ivfpq", clustered, nlist=16, pq_m=4))
    assert pq < flat / 3  # 4 code bytes and an 8-byte id per vector against 64 bytes of floats


def test_bad_kinds_and_vectors_are_refused() -> None:
    with pytest.raises(InputError, match="Unknown index kind"):
        vi.build_index("lsh", np.ones((3, 4)))
    with pytest.raises(InputError, match="zero vector"):
        vi.unit_rows(np.zeros((2, 4)))
    with pytest.raises(InputError, match="finite"):
        vi.unit_rows(np.full((2, 4), np.nan))


def test_save_and_load_round_trip(tmp_path, clustered) -> None:
    index = vi.build_index("ivf", clustered, nlist=32)
    vi.set_effort(index, 4)
    path = vi.save_index(index, tmp_path / "shapes.faiss")
    loaded = vi.load_index(path, dim=16)
    vi.set_effort(loaded, 4)
    for a, b in zip(index.search(clustered[:20], 5), loaded.search(clustered[:20], 5), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ["shapes.faiss"]  # no temporary file left behind


def test_saving_never_overwrites(tmp_path, clustered) -> None:
    path = tmp_path / "kept.faiss"
    path.write_bytes(b"precious")
    with pytest.raises(InputError, match="already exists"):
        vi.save_index(vi.build_index("flat", clustered), path)
    assert path.read_bytes() == b"precious" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(InputError, match="does not exist"):
        vi.save_index(vi.build_index("flat", clustered), tmp_path / "no" / "such.faiss")


def test_missing_corrupt_and_mismatched_files_are_refused(tmp_path, clustered) -> None:
    with pytest.raises(InputError, match="No index file"):
        vi.load_index(tmp_path / "missing.faiss")
    (tmp_path / "junk.faiss").write_bytes(b"not an index at all" * 10)
    with pytest.raises(InputError, match="not a readable FAISS index"):
        vi.load_index(tmp_path / "junk.faiss")
    whole = vi.save_index(vi.build_index("flat", clustered), tmp_path / "whole.faiss")
    (tmp_path / "cut.faiss").write_bytes(whole.read_bytes()[:1000])
    with pytest.raises(InputError, match="not a readable FAISS index"):
        vi.load_index(tmp_path / "cut.faiss")
    with pytest.raises(InputError, match="16-dimensional"):
        vi.load_index(whole, dim=64)


@pytest.fixture(scope="module")
def client(corpus):
    yield from module_client(build_vector_search_app(corpus, vi.build_index("flat", corpus.vectors)))


def test_app_text_query_matches_the_index(client, corpus) -> None:
    _, table = client.predict(corpus.gallery.captions[7], 5, api_name="/search_text")
    assert table["headers"] == HEADERS and len(table["data"]) == 5
    first = table["data"][0]
    assert first[1:4] == [207, "caption", 7]
    assert [r[0] for r in table["data"]] == [1, 2, 3, 4, 5]


def test_app_picture_query_finds_the_picture(client, corpus, tmp_path) -> None:
    path = tmp_path / "query.png"
    Image.fromarray(corpus.gallery.images[11]).save(path)
    pictures, table = client.predict(handle_file(str(path)), 3, api_name="/search_picture")
    assert table["data"][0][1:4] == [11, "picture", 11] and len(pictures) == 3


def test_app_sound_query_is_read_into_words_then_searched(client, tmp_path) -> None:
    from mmbook.sound import write_wav

    scenes = make_shapes(1, seed=31)
    path = write_wav(tmp_path / "clip.wav", scenes.audio[0], scenes.sample_rate)
    heard, _, table = client.predict(handle_file(str(path)), 5, api_name="/search_sound")
    said = [f"{o['color']} {o['shape']}" for o in scenes.attributes[0]]
    assert heard == ", ".join(said)  # the tone reader's words are the query
    query = " and ".join(f"a {s}" for s in said)
    _, by_text = client.predict(query, 5, api_name="/search_text")
    assert table["data"] == by_text["data"]
    quiet = write_wav(tmp_path / "quiet.wav", np.zeros(scenes.sample_rate, np.float32), scenes.sample_rate)
    with pytest.raises(AppError, match="silent|no shapes-world tone"):
        client.predict(handle_file(str(quiet)), 5, api_name="/search_sound")
    with pytest.raises(AppError, match="Please upload a clip"):
        client.predict(None, 5, api_name="/search_sound")
    assert client.predict("a red circle", 1, api_name="/search_text")[1]["data"]


@pytest.mark.parametrize(
    ("api", "query", "k", "message"),
    [
        ("/search_text", "", 5, "Please type a description"),
        ("/search_text", "a purple zebra", 5, "never seen the word"),
        ("/search_text", "a red circle", 0, "whole number from 1"),
        ("/search_text", "a red circle", 1000, "whole number from 1"),
        ("/search_text", "a red circle", "many", "whole number from 1"),
        ("/search_picture", None, 5, "Please upload a picture"),
    ],
)
def test_app_refuses_bad_input_and_stays_up(client, api, query, k, message) -> None:
    with pytest.raises(AppError, match=message):
        client.predict(query, k, api_name=api)
    assert client.predict("a red circle", 1, api_name="/search_text")[1]["data"]


def test_app_refuses_a_tiny_picture_and_a_non_picture(client, tmp_path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "tiny.png")
    with pytest.raises(AppError, match="too small to show anything"):
        client.predict(handle_file(str(tmp_path / "tiny.png")), 3, api_name="/search_picture")
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(AppError, match="could not be read as a picture"):
        client.predict(handle_file(str(tmp_path / "notes.png")), 3, api_name="/search_picture")


def test_an_index_of_another_table_is_refused(corpus) -> None:
    with pytest.raises(ValueError, match="the table has 400"):
        build_vector_search_app(corpus, vi.build_index("flat", corpus.vectors[:10]))
