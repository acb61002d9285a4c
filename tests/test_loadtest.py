"""mmbook.loadtest against a small app on 127.0.0.1: counts, percentiles and recorded failures."""

from __future__ import annotations

import math

import gradio as gr
import pytest
from mmbook.demos import serve
from mmbook.loadtest import LoadResult, RestClient, load_test, simulate_closed_loop


def _app() -> gr.Blocks:
    def shout(text: str) -> str:
        if text == "fail":
            raise gr.Error("asked to fail")
        return text.upper()

    return gr.Interface(shout, "text", "text", api_name="shout")


def test_every_request_is_counted_and_timed() -> None:
    with serve(_app()) as url:
        result = load_test(url, "/shout", ["hi"], clients=4, requests_per_client=3, check=lambda a: a == "HI")
    assert result.clients == 4 and result.requests == 12 and not result.failures
    assert len(result.latencies) == 12 and all(t > 0 for t in result.latencies)
    assert result.percentile(50) <= result.percentile(95) <= max(result.latencies)
    assert result.throughput > 0 and result.seconds >= max(result.latencies)
    assert sorted(result.rounds) == sorted([0, 1, 2] * 4) and len(result.after(1)) == 8


def test_failures_are_recorded_not_raised() -> None:
    with serve(_app()) as url:
        refused = load_test(url, "/shout", ["fail"], clients=2, requests_per_client=2)
        wrong = load_test(url, "/shout", ["hi"], clients=1, requests_per_client=2, check=lambda a: a == "no")
    assert refused.requests == 4 and len(refused.failures) == 4 and "asked to fail" in refused.failures[0]
    assert len(wrong.failures) == 2 and "unexpected answer 'HI'" in wrong.failures[0]
    assert math.isnan(refused.percentile(50)) and refused.throughput == 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one client"):
        load_test("http://127.0.0.1:1/", "/x", [], clients=0, requests_per_client=1)
    assert LoadResult(1).requests == 0


def test_rest_visitors_get_the_same_answers_and_messages() -> None:
    with serve(_app()) as url:
        fine = load_test(url, "/shout", ["hi"], clients=3, requests_per_client=2, check=lambda a: a == "HI", via="rest")
        refused = load_test(url, "/shout", ["fail"], clients=1, requests_per_client=2, via="rest")
        client = RestClient(url)
        try:
            assert client.predict("again", api_name="/shout") == "AGAIN"
        finally:
            client.close()
    assert fine.requests == 6 and not fine.failures and fine.mean <= max(fine.latencies)
    assert len(refused.failures) == 2 and refused.failures[0] == "RuntimeError: asked to fail"
    with pytest.raises(ValueError, match="via must be"):
        load_test("http://127.0.0.1:1/", "/x", [], clients=1, requests_per_client=1, via="grpc")


def test_the_simulated_worker_matches_the_closed_forms() -> None:
    s, r = 0.01, 0.025
    # A burst of N requests at an idle worker: the k-th waits k service times.
    burst = simulate_closed_loop(5, 1, s)
    assert [row[0] for row in burst] == pytest.approx([s, 2 * s, 3 * s, 4 * s, 5 * s])
    # Once every client is on its second round, the latency is max(r + s, N s): round trip or queue bound.
    for n in (1, 2, 3, 8, 32):
        steady = [t for row in simulate_closed_loop(n, 6, s, r) for t in row[2:]]
        assert steady == pytest.approx([max(r + s, n * s)] * len(steady))
    with pytest.raises(ValueError, match="service > 0"):
        simulate_closed_loop(1, 1, 0.0)
