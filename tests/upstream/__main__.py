"""``python -m tests.upstream [--port 9100] [--api-key KEY] [--no-record]``: serve until killed,
after printing ``READY <port>`` once listening."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from tests.upstream.server import Upstream


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local OpenAI/Anthropic stand-in upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--no-record", action="store_true", help="do not keep the received requests")
    args = parser.parse_args(argv)

    async def serve() -> None:
        upstream = Upstream(host=args.host, port=args.port, api_key=args.api_key, record=not args.no_record)
        await upstream.start()
        sys.stdout.write(f"READY {upstream.port}\n")
        sys.stdout.flush()
        try:
            await asyncio.Event().wait()
        finally:
            await upstream.aclose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
