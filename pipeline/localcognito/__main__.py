"""``python -m pipeline.localcognito --host 127.0.0.1 --port 9229``: serve until interrupted."""

from __future__ import annotations

import argparse
import signal
import sys

from pipeline.localcognito.config import ServiceConfig
from pipeline.localcognito.server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.localcognito",
                                     description="The local Cognito import service (moto + import jobs).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9229, help="0 picks a free port")
    parser.add_argument("--url-ttl-seconds", type=float, default=900)
    parser.add_argument("--job-ttl-seconds", type=float, default=86400)
    parser.add_argument("--users-per-second", type=float, default=None)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(args.host, args.port, ServiceConfig(url_ttl_seconds=args.url_ttl_seconds,
                                              job_ttl_seconds=args.job_ttl_seconds,
                                              users_per_second=args.users_per_second),
          quiet=not args.verbose)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
