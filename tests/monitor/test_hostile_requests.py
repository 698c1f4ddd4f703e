"""Malformed HTTP framing over raw sockets, against a real ``monitor serve`` (issue 16).

Each case writes bytes no HTTP client library would send (bad chunk sizes, conflicting
lengths, oversized or broken heads, pipelined garbage, requests that never finish) and
reads until the service closes the connection. Each gets exactly the 4xx answers listed
(none: a closed connection), never a 5xx, and the connection is always closed by the
service (the read waits 60 s at most; the service's keep-alive is 1 s and its request
deadline 2 s). Afterwards the service still answers /healthz and its log has no traceback.

The generated requests (hostile bodies, queries and path values, sent by an HTTP client)
are in test_hostile_http.py; this file once held an in-process version of them.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import ServiceProcess, config

TOKEN = "framing-admin-token"
REQUEST_TIMEOUT_SECONDS = 2.0
MAX_BODY_BYTES = 1024 * 1024
READ_DEADLINE_SECONDS = 60.0

AUTH = f"Authorization: Bearer {TOKEN}\r\n".encode()
RECORDS = b"POST /v1/records HTTP/1.1\r\nHost: monitor\r\n" + AUTH + b"Content-Type: application/json\r\n"
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: monitor\r\n\r\n"
MEGABYTE_CHUNK = b"100000\r\n" + b"a" * 0x100000 + b"\r\n"

# (name, bytes sent, the statuses that may answer it in order, requests the deadline refused).
# A head (or chunk header) over 16 KiB that reaches the service in more than one read is
# refused by h11 (400) before it is whole, or that 400 is lost when the connection closes
# on bytes still unread (a reset: no answer); in one read, whole, it gets 431.
SPLIT = ([400], [])
CASES = [
    ("bad chunk size", RECORDS + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", ([400],), 0),
    ("chunk size overflow", RECORDS + b"Transfer-Encoding: chunked\r\n\r\n" + b"F" * 40 + b"\r\n{}", ([400],), 0),
    ("chunk extension of 100 KB",
     RECORDS + b"Transfer-Encoding: chunked\r\n\r\n2;" + b"e" * 100_000 + b"\r\n{}\r\n0\r\n\r\n", ([422], *SPLIT), 0),
    ("NUL in a trailer", RECORDS + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-T: \x00\r\n\r\n", ([400],), 0),
    ("conflicting Content-Length", RECORDS + b"Content-Length: 2\r\nContent-Length: 20\r\n\r\n{}", ([400],), 0),
    # Transfer-Encoding wins (the body is read chunked) and the connection is closed after the
    # answer (RFC 9112 6.3), so the request pipelined behind it is never read.
    ("Content-Length and Transfer-Encoding",
     RECORDS + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" + HEALTHZ, ([422],), 0),
    ("Transfer-Encoding gzip", RECORDS + b"Transfer-Encoding: gzip\r\n\r\n{}", ([400],), 0),
    ("negative Content-Length", RECORDS + b"Content-Length: -1\r\n\r\n{}", ([400],), 0),
    ("31-digit Content-Length", RECORDS + b"Content-Length: 1" + b"0" * 30 + b"\r\n\r\n{}", ([400],), 0),
    ("reference of 100 TB declared",
     b"PUT /v1/models/car_loan/reference HTTP/1.1\r\nHost: m\r\n" + AUTH
     + b"Content-Type: text/csv\r\nContent-Length: 99999999999999\r\n\r\n", ([413],), 0),
    ("header of 100 KB", b"GET /healthz HTTP/1.1\r\nHost: m\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
     ([431], *SPLIT), 0),
    ("request line of 100 KB", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: m\r\n\r\n", ([431], *SPLIT), 0),
    ("header without a colon", b"GET /healthz HTTP/1.1\r\nHost: m\r\nNoColonHere\r\n\r\n", ([400],), 0),
    ("space before the colon", b"GET /healthz HTTP/1.1\r\nHost: m\r\nX-A : b\r\n\r\n", ([400],), 0),
    ("NUL in the request line", b"GET /hea\x00lthz HTTP/1.1\r\nHost: m\r\n\r\n", ([400],), 0),
    ("method with an @", b"G@T /healthz HTTP/1.1\r\nHost: m\r\n\r\n", ([400],), 0),
    ("HTTP/0.9 request line", b"GET /healthz\r\n\r\n", ([400],), 0),
    ("pipelined garbage", HEALTHZ + b"GARBAGE\x01\x02\r\n\r\n", ([200, 400],), 0),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ([404, 400],), 0),
    ("head that never ends", b"POST /v1/records HTTP/1.1\r\nHost: m\r\nX-Slow: ", ([408],), 1),
    ("body shorter than Content-Length", RECORDS + b"Content-Length: 100\r\n\r\n{}", ([408],), 1),
    # Answered 413 half-way; the rest of the body arrives after the answer, then nothing:
    # the idle connection is closed by the keep-alive timer (uvicorn alone never closed it).
    ("body past the limit, then idle",
     RECORDS + b"Transfer-Encoding: chunked\r\n\r\n" + MEGABYTE_CHUNK * 2 + b"0\r\n\r\n", ([413],), 0),
]  # fmt: skip


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    tmp: Path = tmp_path_factory.mktemp("framing")
    data = config(
        tmp,
        auth={"tokens": [{"name": "admin", "token": TOKEN}]},
        server={"request_timeout_seconds": REQUEST_TIMEOUT_SECONDS, "keep_alive_seconds": 1.0},
        limits={"max_body_bytes": MAX_BODY_BYTES},
    )
    running = ServiceProcess(tmp, data).start(timeout=120)  # generous: the machine may be busy
    try:
        yield running
    finally:
        running.stop()


def exchange(port: int, raw: bytes) -> tuple[list[int], bool]:
    """Writes ``raw`` and reads until the service closes the connection: the statuses of
    the answers (100 Continue left out) and whether the service closed it."""
    received = b""
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=READ_DEADLINE_SECONDS) as sock:
        try:
            sock.sendall(raw)
        except OSError:  # the service closed while we wrote: what it answered is still readable
            pass
        deadline = time.monotonic() + READ_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", received) if code != b"100"]
    return statuses, closed


def refused_by_deadline(service: ServiceProcess) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=60).text
    found = re.search(r'^monitor_http_requests_refused_total\{cause="request_timeout"\} (\S+)$', text, re.M)
    assert found is not None
    return float(found.group(1))


@pytest.mark.parametrize(("raw", "answers", "timed_out"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_malformed_framing_gets_a_4xx_or_a_closed_connection(
    service: ServiceProcess, raw: bytes, answers: tuple[list[int], ...], timed_out: int
) -> None:
    before = refused_by_deadline(service)
    answered, closed = exchange(service.port, raw)
    assert answered in answers
    assert closed, "the service kept the connection open past the read deadline"
    assert refused_by_deadline(service) - before == timed_out
    assert httpx.get(f"{service.url}/healthz", timeout=60).status_code == 200
    assert "Traceback" not in service.log()
