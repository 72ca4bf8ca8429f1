"""`ec2gw serve --workers N`: uvicorn's worker processes, each with a listening socket of
its own.

`uvicorn --workers N` shares one listening socket between the workers, and whichever
worker wakes first accepts every connection waiting: a burst of keep-alive connections
(a pool of clients starting together) can end up on one worker while the others idle.
Measured with 32 connections: 2 workers gave from 0.97 to 1.9 times the throughput of
one, from run to run. Here each worker binds its own socket to the same address with
SO_REUSEPORT, and the kernel spreads new connections evenly over them (Linux). uvicorn's
supervisor still starts, watches and restarts the workers.

Every listening socket here is made a TCP one asyncio recognises (`tcp_listener`): asyncio
turns Nagle's algorithm off (TCP_NODELAY) only on accepted sockets whose `proto` is
IPPROTO_TCP, and a socket made as `socket.socket(family, SOCK_STREAM)`, as this module's
used to be, has `proto` 0, as have the connections it accepts. uvicorn (h11) writes an
answer's head and body separately; with Nagle on, the body waited for the client's delayed
ACK of the head: 44 ms added to every small answer with 2 workers, against 1.2 ms with one
(issue 20). `uvicorn.run` (one worker) and uvicorn's `Config.bind_socket` make their
sockets with IPPROTO_TCP already.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess


def serve(app: str, workers: int, host: str, port: int, **options: Any) -> None:
    """Run `app` (an import string of an app factory) in `workers` processes."""
    config = uvicorn.Config(app, factory=True, workers=workers, host=host, port=port, **options)
    if not spreads_connections():  # uvicorn's own way: one shared socket
        Multiprocess(config, sockets=[tcp_listener(config.bind_socket())]).run()
        return
    reuse_port_socket(host, port).close()  # fails here, once, if the address is taken
    listener: Any = ReusePortListener(host, port)
    Multiprocess(config, sockets=[listener]).run()


def spreads_connections() -> bool:
    """Whether sockets sharing a port with SO_REUSEPORT share its connections (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


@dataclass(frozen=True)
class ReusePortListener:
    """What the supervisor hands each worker for its socket: unpickled in the worker, it
    becomes a socket of the worker's own, bound to the address with SO_REUSEPORT."""

    host: str
    port: int

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return reuse_port_socket, (self.host, self.port)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return tcp_listener(sock)


def tcp_listener(sock: socket.socket) -> socket.socket:
    """`sock` (an IPv4/IPv6 stream socket) as one whose accepted connections have Nagle's
    algorithm off: its `proto` IPPROTO_TCP, which the sockets it accepts inherit and asyncio
    looks for before it sets TCP_NODELAY on them (and which survives the pickling to uvicorn's
    worker processes), and TCP_NODELAY set on it too, which Linux copies to them. Also
    applied to uvicorn's shared socket, whatever uvicorn version made it."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        return sock  # a Unix socket: no Nagle
    if sock.proto != socket.IPPROTO_TCP:
        sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
