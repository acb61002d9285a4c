"""mmbook.serving (Chapter 13): every variant gives /best_match's answers, refuses bad input with a message,
and the batching model and the locust sweep work."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import httpx
import pytest
from mmbook import serving
from mmbook.errors import InputError
from mmbook.loadtest import RestClient, load_test

QUERIES = ["a red circle in the center", "a blue square at the top", "a green triangle on the left"]


@pytest.fixture(scope="module")
def matcher():
    return serving.load_matcher(offline=True)


def test_the_route_answers_as_the_gradio_endpoint(matcher) -> None:
    expected = [matcher.best_match(q) for q in QUERIES]
    with serving.serve_asgi(serving.build_fastapi_app(matcher)) as url:
        route, gradio = serving.RouteClient(url), RestClient(url + "ui")
        try:
            assert [route.predict(q) for q in QUERIES] == expected
            assert [gradio.predict(q, api_name="/best_match") for q in QUERIES] == expected
        finally:
            route.close()
            gradio.close()


def test_batches_answer_each_item_as_alone(matcher) -> None:
    expected = [matcher.best_match(q) for q in QUERIES]
    assert serving.best_match_batch(matcher, QUERIES) == expected
    mixed = serving.best_match_batch(matcher, [QUERIES[0], "a purple dragon", QUERIES[1]], errors=True)
    assert mixed[0] == expected[0] and mixed[2] == expected[1] and "'dragon'" in mixed[1]["error"]
    with pytest.raises(InputError, match="dragon"):
        serving.best_match_batch(matcher, ["a purple dragon"])
    with serving.serve_asgi(serving.build_variant("gradio-batch", matcher)) as url:
        for query, answer in zip(QUERIES, expected, strict=True):
            result = load_test(url, "/best_match", [query], clients=4, requests_per_client=2, via="rest",
                               check=lambda a, answer=answer: a == answer)  # fmt: skip
            assert result.requests == 8 and not result.failures, result.failures


def test_bad_input_gets_a_clear_4xx_never_a_traceback(matcher) -> None:
    with serving.serve_asgi(serving.build_fastapi_app(matcher)) as url:
        route = url + serving.ROUTE.lstrip("/")
        unknown = httpx.post(route, json={"query": "a purple dragon"})
        empty = httpx.post(route, json={"query": "  "})
        wrong = httpx.post(route, json={"text": 3})
        with pytest.raises(RuntimeError, match="never seen the word"):
            serving.RouteClient(url).predict("a purple dragon")
        refused = load_test(url + "ui", "/best_match", ["a purple dragon"], clients=1, requests_per_client=1,
                            via="rest")  # fmt: skip
    assert unknown.status_code == 422 and "'dragon'" in unknown.json()["detail"]
    assert empty.status_code == 422 and "Please type a description" in empty.json()["detail"]
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "query"]
    for response in (unknown, empty, wrong):
        assert "Traceback" not in response.text
    assert refused.failures == ["RuntimeError: The model has never seen the word(s) 'dragon'. It knows the "
                                "words of shapes-world captions: colours, shapes and positions."]


def test_the_batching_model() -> None:
    s0, s1 = 0.004, 0.001
    assert serving.batch_cycle(8, s0, s1) == pytest.approx(0.012)
    # saturated: b = min(N, B) per batch, throughput b / (s0 + b s1), latency N / X
    x, w = serving.batch_throughput(64, 16, s0, s1)
    assert x == pytest.approx(16 / 0.02) and w == pytest.approx(64 / x)
    assert serving.batch_throughput(64, 1, s0, s1)[0] == pytest.approx(1 / (s0 + s1))
    # throughput grows with the batch towards 1 / s1
    rates = [serving.batch_throughput(1000, b, s0, s1)[0] for b in (1, 2, 4, 8, 64, 512)]
    assert rates == sorted(rates) and rates[-1] < 1 / s1
    # few clients, long round trip: the round trip limits
    assert serving.batch_throughput(2, 16, s0, s1, round_trip=0.1)[0] == pytest.approx(2 / (0.1 + s0 + 2 * s1))
    with pytest.raises(ValueError, match="batch >= 1"):
        serving.batch_cycle(0, s0, s1)
    with pytest.raises(ValueError, match="unknown variant"):
        serving.build_variant("nginx")


def test_the_stopwatch_times_requests_and_functions(matcher) -> None:
    watch = serving.Stopwatch()
    app = serving.build_fastapi_app(matcher)
    with serving.serve_asgi(watch.middleware(app)) as url:
        for _ in range(3):
            httpx.post(url + "api/best_match", json={"query": QUERIES[0]}).raise_for_status()
    timed = watch.timed("function", matcher.best_match)
    assert timed(QUERIES[0]) == matcher.best_match(QUERIES[0])
    medians = watch.medians()
    assert set(medians) == {"POST /api/best_match", "function"} and all(t > 0 for t in medians.values())


def test_a_short_locust_run(matcher, tmp_path: Path) -> None:
    script = Path(__file__).parents[1] / "scripts" / "serve_bench.py"
    spec = importlib.util.spec_from_file_location("serve_bench", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with serving.serve_asgi(serving.build_fastapi_app(matcher)) as url:
        row = bench.run_locust(url.rstrip("/"), "route", 2, 2, tmp_path / "smoke")
    assert row["requests"] > 5 and row["failures"] == 0 and row["p50_ms"] <= row["p95_ms"]
    assert "| fastapi | 2 |" in bench.markdown([{"setup": "fastapi", "clients": 2, **row}])
