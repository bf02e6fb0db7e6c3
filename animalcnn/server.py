"""Serving a web app on this machine: the listening socket, the warning when it is
reachable from others, and uvicorn. Shared by `serve` (a model) and `dashboard` (runs)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

from animalcnn.errors import UserError


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, or one line saying why not (before anything says
    the server is up)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.getaddrinfo(host, None)[0][4][0]).is_loopback
    except (OSError, ValueError):
        return False


def run_app(app: Any, host: str, port: int, what: str, say: Callable[[str], None]) -> None:
    """Serve `app` on host:port until interrupted, one log line per request; `say` tells
    where (`serving WHAT on http://...`) once the address is bound."""
    try:
        import uvicorn
    except ImportError:
        raise UserError("uvicorn is not installed: pip install 'animalcnn[serve]'") from None
    sock = listen(host, port)
    if not loopback(host):
        from animalcnn.console import print_warning

        print_warning(
            f"listening on {host}: other machines can reach this server, and it "
            "has no authentication"
        )
    shown = f"[{host}]" if ":" in host else host
    say(f"serving {what} on http://{shown}:{sock.getsockname()[1]}/ (Ctrl-C stops)")
    server = uvicorn.Server(uvicorn.Config(app, log_level="info"))
    server.run(sockets=[sock])
