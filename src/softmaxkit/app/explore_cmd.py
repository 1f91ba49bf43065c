"""``softmaxkit explore``: serve the softmax explorer on a local port.

Register with ``add_parser(subparsers)``; the command is ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import ipaddress
import socket
import sys

__all__ = ["add_parser", "run", "bind_socket"]

_EPILOG = """\
examples:
  softmaxkit explore                    http://127.0.0.1:<a free port>/
  softmaxkit explore --port 8765

Serves one page: logits you can type or drag, a temperature slider and the true
class, with the probabilities, cross-entropy, gradient p - y, hardmax, entropy and
the naive vs stable computation; the two-class sigmoid view; and live training of
softmax regression on the bundled digits. Every number is computed by softmaxkit on
this server. Needs the 'explore' extra (Starlette, uvicorn). Stop with Ctrl-C.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``explore`` command to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "explore", help="interactive softmax explorer in the browser (local web server)",
        description="Start a local web server with the softmax explorer and print its URL.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0, metavar="N",
                   help="TCP port (default: a free one chosen by the system)")
    p.add_argument("--host", default="127.0.0.1", metavar="ADDR",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--max-train-seconds", type=float, default=60.0, metavar="S",
                   help="wall-clock limit of one training run (default 60)")
    p.set_defaults(func=run)
    return p


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    return sock


def run(args) -> int:
    """Run ``softmaxkit explore``; returns the exit status (2 on a user error)."""

    def fail(msg: str) -> int:
        print(f"softmaxkit: error: {msg}", file=sys.stderr)
        return 2

    if not 0 <= args.port <= 65535:
        return fail(f"--port must be in 0..65535, got {args.port}")
    if not args.max_train_seconds > 0:
        return fail(f"--max-train-seconds must be > 0, got {args.max_train_seconds}")
    try:
        import uvicorn

        from .explore.server import create_app, stop_runs
    except ImportError as exc:
        return fail(f"the explorer needs Starlette and uvicorn ({exc}); "
                    "install them with: pip install 'softmaxkit[explore]'")
    try:
        sock = bind_socket(args.host, args.port)
    except (OSError, OverflowError) as exc:
        return fail(f"cannot listen on {args.host}:{args.port} ({exc})")
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{port}/"
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    print(f"softmax explorer at {url}  (Ctrl-C stops it)", flush=True)
    if not loopback:
        print(f"note: listening on {args.host}: other machines on the network can reach it",
              file=sys.stderr, flush=True)
    app = create_app(max_train_seconds=args.max_train_seconds)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        stop_runs(app)
        sock.close()
    return 0
