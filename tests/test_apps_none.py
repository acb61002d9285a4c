"""Every endpoint of every app answers ``None`` for any one parameter with a clear message, not Gradio's
generic one, and keeps serving (Chapter 10's rule: every input a user can give is handled)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from mmbook import demos
from mmbook.apps import APPS
from mmbook.apps.assistant import build_assistant_app, load_assistant_models
from mmbook.apps.pretrained import build_pretrained_app
from mmbook.data import make_shapes
from mmbook.pretrained import load_models
from PIL import Image

GENERIC = "has not enabled verbose error reporting"
#: Apps whose builders need the hub's models: built here on the offline path.
OFFLINE: dict[str, Callable[[], gr.Blocks]] = {
    "pretrained": lambda: build_pretrained_app(load_models(offline=True)),
    "assistant": lambda: build_assistant_app(load_assistant_models(offline=True)),
}


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("none") / "scene.png"
    Image.fromarray(make_shapes(1, seed=3).images[0]).resize((64, 64)).save(path)
    return str(path)


def examples(picture: str, app: str = "") -> dict[str, dict[str, Any]]:
    """A valid value per parameter name, where the component's default is not one (pictures, chat); an app
    whose endpoint shares another app's name has its own entry."""
    image = handle_file(picture)
    if app == "shop-assistant":
        return {"ask": {"picture": image, "question": "how much is this?"}}
    return {
        "colours": {"image": image}, "resize": {"image": image}, "answer": {"image": image},
        "classify": {"image": image}, "caption": {"image": image},
        "chat": {"message": {"text": "what colours?", "files": [image]}},
        "transcribe": {}, "greet": {"name": "Ada"}, "search": {"query": "a red circle"},
        "complete": {"prompt": "a red circle"}, "search_text": {"query": "a red circle"},
        "search_picture": {"picture": image}, "ask": {"picture": image, "question": "what color is the circle?"},
    }  # fmt: skip


def calls(client: Client, picture: str, app: str = "") -> Iterator[tuple[str, list[Any], int]]:
    """Each endpoint with valid arguments and the index of each parameter to replace by ``None``."""
    known = examples(picture, app)
    for name, info in client.view_api(return_format="dict", print_info=False)["named_endpoints"].items():
        parameters = info["parameters"]
        valid = [known.get(name.strip("/"), {}).get(p["parameter_name"], p.get("parameter_default"))
                 for p in parameters]
        for index in range(len(parameters)):
            yield name, valid, index


def _call(client: Client, args: list[Any], name: str) -> bool:
    """Whether ``name`` answered ``args``; a refusal must carry the app's own message."""
    try:
        client.predict(*args, api_name=name)
    except AppError as error:  # refusing is right; Gradio's generic message is not
        assert GENERIC not in str(error) and str(error).strip(), (name, args, str(error))
        return False
    return True


@pytest.mark.parametrize("app", sorted(APPS))
def test_none_for_any_parameter_gets_a_clear_message(app: str, picture: str) -> None:
    demo = OFFLINE.get(app, APPS[app])()
    with demos.serve(demo, show_error=False) as url:
        client = Client(url, verbose=False)
        try:
            tried = list(calls(client, picture, app))
            assert tried, f"{app} has no endpoint with parameters"
            for name, valid, index in tried:
                _call(client, [None if i == index else value for i, value in enumerate(valid)], name)
            # the server still answers: every endpoint once more with valid values, at least one succeeds
            answered = [_call(client, valid, name) for name, valid in {n: v for n, v, _ in tried}.items()]
            assert any(answered), app
        finally:
            client.close()
