"""Serving the app on several processes (``irbis serve --workers N``).

uvicorn's own multi-process mode binds its listening socket without naming the
TCP protocol, so asyncio does not switch Nagle's algorithm off on accepted
connections: every response then waits for the client's delayed ACK, about
40 ms, and a two-worker server answered fewer requests than one. Here the
parent binds a proper TCP socket with ``TCP_NODELAY`` (inherited by accepted
connections on Linux) and forks the workers, which share it.
"""

from __future__ import annotations

import ipaddress
import multiprocessing
import signal
import socket
from pathlib import Path
from typing import Any

import uvicorn

from irbis.core.errors import BadInputError

__all__ = ["is_loopback", "listening_socket", "serve_workers", "tls_options"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an ``irbis serve --host`` value) is reachable from this machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name may resolve anywhere


def tls_options(cert: Path | None, key: Path | None) -> dict[str, str]:
    """uvicorn's ``ssl_certfile``/``ssl_keyfile`` for ``--tls-cert``/``--tls-key``, checked.

    The pair is loaded once here so that a wrong path, a key that does not
    match or a file that is not PEM is a one-line error before the server starts.

    Raises
    ------
    BadInputError
        Only one of the two given, a file missing, or the pair unusable.
    """
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        raise BadInputError(
            "serve", "--tls-cert and --tls-key go together", "give both PEM files, or neither"
        )
    for opt, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            raise BadInputError(f"serve {opt} {path}", "no such file", "give the PEM file's path")
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise BadInputError(
            f"serve --tls-cert {cert} --tls-key {key}",
            f"cannot use them for HTTPS ({exc})",
            "give a PEM certificate and its own unencrypted private key",
        ) from None
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP listening socket on ``host:port`` with Nagle's algorithm off."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the parent dies, even by SIGKILL (best effort)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker(sock: socket.socket, app: str, config: dict[str, Any]) -> None:
    _die_with_parent()
    cfg = uvicorn.Config(app, factory=True, log_level="warning", **config)
    uvicorn.Server(cfg).run(sockets=[sock])


def serve_workers(host: str, port: int, workers: int, app: str, **config: Any) -> None:
    """Run ``workers`` processes of the app factory ``app`` on one socket until Ctrl-C.

    Parameters
    ----------
    host, port:
        Where to listen.
    workers:
        Number of processes (about one per CPU core).
    app:
        ``"module:factory"`` of a function returning the ASGI app.
    config:
        More ``uvicorn.Config`` options for every worker (TLS files, trusted proxies).
    """
    sock = listening_socket(host, port)

    def stop(_signum, _frame) -> None:
        raise SystemExit(0)  # run the cleanup below: workers never outlive the parent

    signal.signal(signal.SIGTERM, stop)
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_worker, args=(sock, app, config), daemon=True) for _ in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for p in procs:
            p.join(timeout=10)
        sock.close()
