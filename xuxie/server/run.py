"""Starting the server: model names, the listening socket, uvicorn."""

from __future__ import annotations

import ipaddress
import socket
import warnings
from pathlib import Path

from ..errors import XuxieError, XuxieWarning
from .limits import ServerLimits


def model_table(specs: list[str]) -> dict[str, Path]:
    """``NAME=DIR`` or ``DIR`` (named after its folder) -> {name: dir}; names must be unique."""
    table: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).resolve().name, spec
        if not name or not path:
            raise XuxieError(f"'{spec}' is not a model: give a model directory, or NAME=DIR")
        if name in table:
            raise XuxieError(f"two models are named '{name}'; name them apart with NAME=DIR (e.g. {name}-2={path})")
        table[name] = Path(path)
    return table


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket to serve on, bound now so a taken port is one clear line (not a uvicorn log)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise XuxieError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port or --host") from None
    sock.listen(128)
    return sock


def serve(specs: list[str], host: str, port: int, api_key: str | None, limits: ServerLimits, device: str | None,
          on_ready=None) -> None:
    """Load the models, bind, and serve until Ctrl-C (``on_ready(url, names)`` once listening)."""
    import uvicorn

    from ..api import TextGenerator
    from .app import create_app

    if not is_loopback(host) and not api_key:
        warnings.warn(f"serving on {host} without --api-key: anyone who can reach this machine can use the models",
                      XuxieWarning, stacklevel=2)
    table = model_table(specs)
    generators = {name: TextGenerator.load(path, device) for name, path in table.items()}
    sock = listening_socket(host, port)
    app = create_app(generators, limits, api_key)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    if on_ready is not None:
        shown = f"[{host}]" if ":" in host else host
        on_ready(f"http://{shown}:{sock.getsockname()[1]}", list(generators))
    server.run(sockets=[sock])
