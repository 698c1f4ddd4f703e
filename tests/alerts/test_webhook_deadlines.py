"""Webhook isolation and the attempt's limits, against real misbehaving receivers on loopback:
a receiver that trickles its answer forever holds only its own webhook (the others are
delivered meanwhile) and only until the attempt's one total deadline; an error answer of
50 MB is read a few KB deep, and the connection closed."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from support import Receiver, free_port, metric, wait_for

from alerts.dispatcher import WebhookDispatcher
from alerts.transition import Transition
from alerts.webhooks import WebhookConfig
from monitor.metrics import Metrics
from monitor.store.database import Store

STATE = {"format_version": 1, "rules": [], "states": []}
HANG_GUARD = 60.0  # seconds: only ever reached when something is broken
TRICKLE_SECONDS = 0.2


def transition(model: str) -> Transition:
    return Transition(
        alert_id=f"dataset-drift:{model}::1", rule="dataset-drift", model=model, feature="", severity="critical",
        from_state="inactive", to_state="firing", at=time.time(), window_seq=5, value=0.6, detail={},
    )  # fmt: skip


class BadReceiver:
    """A receiver that answers with ``head`` then writes ``chunk`` after ``chunk``, every
    ``pause`` seconds, ``chunks`` times (None: forever), until the client goes away. It counts
    the bytes it managed to write and says whether it is still in the middle of answering."""

    def __init__(self, head: bytes, chunk: bytes, pause: float, chunks: int | None = None):
        self.head, self.chunk, self.pause, self.chunks = head, chunk, pause, chunks
        self.url = f"http://127.0.0.1:{free_port()}/hook"
        self.sent = 0  # bytes written after head
        self.active = False  # in the middle of an answer
        self.ended_by = ""  # the error that ended the answer (the client closed the connection)
        self.requests = 0
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        handler.rfile.read(int(handler.headers.get("content-length", 0)))
        self.active = True
        self.requests += 1
        try:
            handler.wfile.write(self.head)
            n = 0
            while (self.chunks is None or n < self.chunks) and not self._closing.is_set():
                handler.wfile.write(self.chunk)
                self.sent += len(self.chunk)
                n += 1
                if self.pause:
                    self._closing.wait(self.pause)
        except OSError as exc:
            self.ended_by = type(exc).__name__
        finally:
            self.active = False

    def __enter__(self) -> BadReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        port = int(self.url.split(":")[2].split("/")[0])
        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


def by_webhook(store: Store) -> dict[str, dict[str, Any]]:
    return {row["webhook"]: row for row in store.webhook_deliveries()}


def test_a_trickling_receiver_holds_neither_the_other_webhooks_nor_past_its_deadline(store: Store) -> None:
    registry = CollectorRegistry()
    # Stalls after the status line: the headers come one byte every 0.2 s, forever.
    headers_forever = BadReceiver(b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a", TRICKLE_SECONDS)
    # A whole head, then a 1 GB error body one byte every 0.2 s.
    body_forever = BadReceiver(b"HTTP/1.1 500 Oops\r\nContent-Length: 1000000000\r\n\r\n", b"x", TRICKLE_SECONDS)
    with headers_forever, body_forever, Receiver() as healthy:
        slow_headers = WebhookConfig(name="slow-headers", url=headers_forever.url, timeout_seconds=6)
        slow_body = WebhookConfig(name="slow-body", url=body_forever.url, timeout_seconds=6)
        ok = WebhookConfig(name="healthy", url=healthy.url, models=["iris"], timeout_seconds=6)
        webhooks = [slow_headers, slow_body, ok]
        dispatcher = WebhookDispatcher(store, webhooks, Metrics(registry), poll_seconds=0.02)
        store.apply_alert_transitions([transition("car_loan")], STATE, webhooks=[slow_headers, slow_body])
        dispatcher.start()
        try:
            # Precondition: both slow receivers are in the middle of answering (2+ bytes trickled).
            wait_for(lambda: headers_forever.sent >= 2 and body_forever.sent >= 2, HANG_GUARD, "the slow answers")
            store.apply_alert_transitions([transition("iris")], STATE, webhooks=[ok])
            wait_for(lambda: by_webhook(store)["healthy"]["state"] == "delivered", HANG_GUARD, "the healthy delivery")
            # ...delivered while both slow attempts are still held: nothing of theirs recorded yet.
            assert headers_forever.active and body_forever.active
            rows = by_webhook(store)
            assert [(rows[n]["state"], rows[n]["attempts"]) for n in ("slow-headers", "slow-body")] == [
                ("pending", 0)
            ] * 2
            assert len(healthy.requests) == 1 and healthy.requests[0]["headers"]["Idempotency-Key"].endswith(":healthy")
        finally:
            dispatcher.stop()  # lets the attempts in flight end, at their deadline, and be recorded
        assert dispatcher._thread is not None and not dispatcher._thread.is_alive()
        rows = by_webhook(store)
        deadline = "DeadlineExceeded: {} within timeout_seconds=6 (one deadline for connect, send and read)"
        assert (rows["slow-headers"]["state"], rows["slow-headers"]["attempts"]) == ("pending", 1)
        assert rows["slow-headers"]["last_status"] is None
        assert rows["slow-headers"]["last_error"] == deadline.format("no response")
        assert (rows["slow-body"]["state"], rows["slow-body"]["attempts"], rows["slow-body"]["last_status"]) == (
            "pending", 1, 500,
        )  # fmt: skip
        error = rows["slow-body"]["last_error"]
        assert error.startswith("HTTP 500: x") and error.endswith(f" [{deadline.format('body not finished')}]")
        # We closed both connections (not just stopped listening): each receiver's next write failed.
        wait_for(lambda: not headers_forever.active and not body_forever.active, HANG_GUARD, "the slow answers' end")
        assert headers_forever.ended_by in {"BrokenPipeError", "ConnectionResetError"}
        assert body_forever.ended_by in {"BrokenPipeError", "ConnectionResetError"}
        assert (headers_forever.requests, body_forever.requests) == (1, 1)
    for name, outcome, n in [("healthy", "delivered", 1), ("slow-headers", "failed_attempt", 1),
                             ("slow-body", "failed_attempt", 1), ("healthy", "failed_attempt", 0)]:  # fmt: skip
        assert metric(registry, "monitor_webhook_deliveries_total", webhook=name, outcome=outcome) == n


MB = 1 << 20
BIG = 50 * MB
CHUNK = 64 * 1024
MAX_SENT = 8 * MB  # what the kernel's socket buffers on both ends can take in before the close


def test_a_50_mb_error_answer_is_read_a_few_kb_deep_and_the_connection_closed(store: Store) -> None:
    registry = CollectorRegistry()
    head = b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % BIG
    with BadReceiver(head, b"x" * CHUNK, 0.0, chunks=BIG // CHUNK) as receiver:
        webhook = WebhookConfig(name="big", url=receiver.url, timeout_seconds=30, backoff_base_seconds=600)
        store.apply_alert_transitions([transition("car_loan")], STATE, webhooks=[webhook])
        dispatcher = WebhookDispatcher(store, [webhook], Metrics(registry), poll_seconds=0.02)
        dispatcher.start()
        try:
            (row,) = wait_for(lambda: [r for r in store.webhook_deliveries() if r["attempts"]], HANG_GUARD, "attempt")
            wait_for(lambda: receiver.requests and not receiver.active, HANG_GUARD, "the receiver's end")
        finally:
            dispatcher.stop()
    assert (row["state"], row["attempts"], row["last_status"]) == ("pending", 1, 500)
    assert row["last_error"] == "HTTP 500: " + "x" * 200
    assert receiver.ended_by in {"BrokenPipeError", "ConnectionResetError"}  # cut off, not read to the end
    assert 0 < receiver.sent <= MAX_SENT, f"the receiver wrote {receiver.sent} bytes of {BIG}"
    assert metric(registry, "monitor_webhook_deliveries_total", webhook="big", outcome="failed_attempt") == 1


def test_a_2xx_status_delivers_even_when_its_body_is_cut_at_the_deadline(store: Store) -> None:
    """The status is the receiver's acceptance: a 2xx whose body trickles on is delivered
    (at the deadline), not retried (which would send the retraining trigger again)."""
    registry = CollectorRegistry()
    head = b"HTTP/1.1 202 Accepted\r\nContent-Length: 1000000000\r\n\r\n"
    with BadReceiver(head, b"x", TRICKLE_SECONDS) as receiver:
        webhook = WebhookConfig(name="accepts", url=receiver.url, timeout_seconds=1)
        store.apply_alert_transitions([transition("car_loan")], STATE, webhooks=[webhook])
        dispatcher = WebhookDispatcher(store, [webhook], Metrics(registry), poll_seconds=0.02)
        dispatcher.start()
        try:
            (row,) = wait_for(lambda: store.webhook_deliveries(state="delivered"), HANG_GUARD, "the delivery")
            wait_for(lambda: receiver.requests and not receiver.active, HANG_GUARD, "the receiver's end")
        finally:
            dispatcher.stop()
    assert (row["attempts"], row["last_status"], row["last_error"]) == (1, 202, None)
    assert receiver.requests == 1 and receiver.ended_by in {"BrokenPipeError", "ConnectionResetError"}
    assert metric(registry, "monitor_webhook_deliveries_total", webhook="accepts", outcome="delivered") == 1
