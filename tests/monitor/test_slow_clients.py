"""Slow and crowding clients against a real ``monitor serve``: a request must arrive whole
within its deadline, and the bodies being received at once are bounded in bytes."""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import httpx
from support import ServiceProcess, car_loan_record, config, wait_for

MIB = 1024 * 1024


def scrape(service: ServiceProcess, name: str, **labels: str) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=30).text
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{name}{{{re.escape(selector)}}} (\S+)$" if labels else rf"^{name} (\S+)$", text, re.M)
    assert match is not None, f"{name}{labels} not exported"
    return float(match.group(1))


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.M)
    assert match is not None
    return int(match.group(1)) * 1024


def open_request(service: ServiceProcess, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", service.port), timeout=60)
    sock.sendall(head)
    return sock


def test_a_request_that_does_not_arrive_in_time_is_answered_408_and_closed(tmp_path: Path) -> None:
    data = config(tmp_path, server={"request_timeout_seconds": 2})
    with ServiceProcess(tmp_path, data) as service:
        # A head that never ends, and a body that stops half-way.
        trickling = open_request(service, b"POST /v1/records HTTP/1.1\r\nHost: monitor\r\nContent-Type: app")
        stalled = open_request(
            service,
            b"POST /v1/records HTTP/1.1\r\nHost: monitor\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + b'{"model": "car_loan", "inputs": {',
        )
        for sock in (trickling, stalled):
            answer = sock.recv(4096)  # without a deadline: nothing until the 60 s socket timeout
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert sock.recv(4096) == b""  # and closed
            sock.close()
        assert scrape(service, "monitor_http_requests_refused_total", cause="request_timeout") == 2
        # Nothing else was held up: a whole request is served as before.
        response = httpx.post(f"{service.url}/v1/records", json=car_loan_record(1), timeout=30)
        assert response.status_code == 200 and response.json()["accepted"] == 1


def upload(service: ServiceProcess, declared: int, sent: int) -> socket.socket:
    """A /v1/records request that declares ``declared`` body bytes and sends ``sent`` of them."""
    sock = open_request(
        service,
        b"POST /v1/records HTTP/1.1\r\nHost: monitor\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {declared}\r\n\r\n".encode(),
    )
    try:
        sock.sendall(b" " * sent)
    except OSError:  # refused and closed while sending: the server's count tells
        pass
    return sock


def test_stalled_uploads_hold_at_most_the_inflight_budget(tmp_path: Path) -> None:
    """40 uploads that stall after 15 of 16 MiB: two fit in the 32 MiB budget and wait there;
    the 38 others are refused, and the service's memory grows by the budget, not by 600 MiB."""
    data = config(
        tmp_path,
        limits={"max_body_bytes": 16 * MIB, "max_inflight_body_bytes": 32 * MIB},
        server={"request_timeout_seconds": 600},  # the stalled uploads stay for the whole test
    )
    with ServiceProcess(tmp_path, data) as service:
        assert service.process is not None
        httpx.post(f"{service.url}/v1/records", json=car_loan_record(1), timeout=30)  # warm
        before = rss_bytes(service.process.pid)
        held = [upload(service, 16 * MIB, 15 * MIB) for _ in range(2)]
        # Precondition: both bodies reached the route and are held there, whole.
        wait_for(lambda: scrape(service, "monitor_http_inflight_body_bytes") == 30 * MIB, 60, "two held uploads")
        sockets: list[socket.socket] = []
        crowd = [
            threading.Thread(target=lambda: sockets.append(upload(service, 16 * MIB, 15 * MIB))) for _ in range(38)
        ]
        for thread in crowd:
            thread.start()
        for thread in crowd:
            thread.join()
        wait_for(
            lambda: scrape(service, "monitor_http_requests_refused_total", cause="body_budget") == 38,
            60,
            "the 38 uploads past the budget refused",
        )
        assert scrape(service, "monitor_http_inflight_body_bytes") == 30 * MIB  # the two held ones, still
        growth = rss_bytes(service.process.pid) - before
        # The 30 MiB held, plus the refused uploads' last chunks and allocator slack; without
        # the budget the 40 uploads held 600 MiB.
        assert growth < 32 * MIB + 48 * MIB, f"RSS grew by {growth / MIB:.0f} MiB"
        response = httpx.post(f"{service.url}/v1/records", json=car_loan_record(2), timeout=30)
        assert response.status_code == 200  # a small body still fits in the 2 MiB left
        for sock in held + sockets:
            sock.close()
