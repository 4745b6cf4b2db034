"""TCP round trips between network namespaces: ``round_trips.py serve HOST PORT`` echoes, ``round_trips.py measure HOST PORT N`` times.

``serve`` prints ``ready`` once it listens; ``measure`` prints, as JSON, the
seconds a connection took and each of ``N`` one-byte round trips.
"""

from __future__ import annotations

import json
import socket
import sys
import time


def serve(host: str, port: int) -> None:
    with socket.create_server((host, port)) as server:
        print("ready", flush=True)
        while True:
            connection, _ = server.accept()
            with connection:
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while data := connection.recv(64):
                    connection.sendall(data)


def measure(host: str, port: int, n: int) -> tuple[float, list[float]]:
    """Seconds to connect, and each of ``n`` one-byte round trips."""
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=30) as connection:
        connected = time.monotonic() - started
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        trips = []
        for _ in range(n):
            sent = time.monotonic()
            connection.sendall(b"x")
            if connection.recv(1) != b"x":
                raise ConnectionError("the echo did not come back")
            trips.append(time.monotonic() - sent)
    return connected, trips


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        connected, trips = measure(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        print(json.dumps({"connect": connected, "round_trips": trips}))
