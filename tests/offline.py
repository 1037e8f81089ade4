"""The no-network guard of the tests that touch Hugging Face libraries.

``from offline import no_network`` in a test module makes every test there refuse (and
record) every name lookup and connection, with the hub libraries told to stay offline; a test
that asks for the fixture gets the list of attempts. :func:`with_nonsense_hub` runs code in a
child process whose hub client talks to an endpoint on a local socket that answers nonsense.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Refuse (and record) every name lookup and connection; hub libraries stay offline."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("a test tried to reach the network")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield attempts
    assert attempts == [], f"network access attempted: {attempts}"


def with_nonsense_hub(code: str, home: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child Python whose hub client uses an endpoint on a local socket that
    answers every request with JSON the hub's API never sends (a misconfigured mirror or
    proxy): ``HF_ENDPOINT`` set, online, its caches under ``home``."""
    with _nonsense_endpoint() as endpoint:
        env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0",
               "HF_DATASETS_OFFLINE": "0", "HF_HOME": str(home)}
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=300, env=env)


@contextmanager
def _nonsense_endpoint() -> Iterator[str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    body = b"[1]"

    def answer() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                             % (len(body), body))

    threading.Thread(target=answer, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
