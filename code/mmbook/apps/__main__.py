"""Launch one of the book's apps: ``python -m mmbook.apps NAME [--port N] [--share]`` (Chapter 1)."""

from __future__ import annotations

import argparse

import mmbook  # noqa: F401  (network hygiene before gradio is imported)


def main(argv: list[str] | None = None) -> None:
    from mmbook.apps import APPS
    from mmbook.limits import LAUNCH

    parser = argparse.ArgumentParser(prog="python -m mmbook.apps", description=__doc__)
    parser.add_argument("name", choices=sorted(APPS), help="which app to launch")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public share link (off by default)")
    args = parser.parse_args(argv)
    APPS[args.name]().launch(**{**LAUNCH, "server_name": args.host, "server_port": args.port, "share": args.share})


if __name__ == "__main__":
    main()
