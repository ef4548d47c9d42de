"""Run every simulator on loopback: ``python -m simulators --port 8100 [--delay 1.0]``."""

from __future__ import annotations

import argparse

import uvicorn

from .app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="Platform simulators for the data release portal")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--delay", type=float, default=None, help="seconds per remote job state")
    args = parser.parse_args()
    uvicorn.run(create_app(args.delay), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
