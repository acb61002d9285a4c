"""mmbook.loadtest against a small app on 127.0.0.1: counts, percentiles and recorded failures."""

from __future__ import annotations

import math

import gradio as gr
import pytest
from mmbook.demos import serve
from mmbook.loadtest import LoadResult, load_test


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
