"""Serving the app on several processes (``irbis serve --workers N``).

uvicorn's own multi-process mode binds its listening socket without naming the
TCP protocol, so asyncio does not switch Nagle's algorithm off on accepted
connections: every response then waits for the client's delayed ACK, about
40 ms, and a two-worker server answered fewer requests than one. Here the
parent binds a proper TCP socket with ``TCP_NODELAY`` (inherited by accepted
connections on Linux) and forks the workers, which share it.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket

import uvicorn

__all__ = ["listening_socket", "serve_workers"]


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


def _worker(sock: socket.socket, app: str) -> None:
    _die_with_parent()
    config = uvicorn.Config(app, factory=True, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


def serve_workers(host: str, port: int, workers: int, app: str) -> None:
    """Run ``workers`` processes of the app factory ``app`` on one socket until Ctrl-C.

    Parameters
    ----------
    host, port:
        Where to listen.
    workers:
        Number of processes (about one per CPU core).
    app:
        ``"module:factory"`` of a function returning the ASGI app.
    """
    sock = listening_socket(host, port)

    def stop(_signum, _frame) -> None:
        raise SystemExit(0)  # run the cleanup below: workers never outlive the parent

    signal.signal(signal.SIGTERM, stop)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(sock, app), daemon=True) for _ in range(workers)]
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
