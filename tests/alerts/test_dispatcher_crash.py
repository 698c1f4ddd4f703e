"""A webhook send in flight when ``monitor serve`` is SIGKILLed (the lease of
:meth:`~monitor.store.outbox.OutboxStore.claim_due`): a real receiver takes the request and
holds its answer, the service dies while it waits, and after a restart the delivery is sent
again once its lease has run out (not before), with the same idempotency key, and recorded
``delivered`` exactly once. On SQLite and on PostgreSQL (``FOR UPDATE SKIP LOCKED``)."""

from __future__ import annotations

import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import ServiceProcess, config, free_port, wait_for

from alerts.dispatcher import lease_seconds
from alerts.transition import Transition
from alerts.webhooks import WebhookConfig
from monitor.store.database import Store

pytestmark = pytest.mark.slow
STATE = {"format_version": 1, "rules": [], "states": []}
# The attempt's deadline: the kill must land within it (checked), and the restarted service
# must be up before the lease (deadline + 5 s) ends (checked too), on a busy machine as well
# (with 20 s, a restart under a load average of 11 on 2 cores came after the lease).
TIMEOUT_SECONDS = 60.0


class HoldingReceiver:
    """A webhook receiver that keeps the first request's answer back until :meth:`stop` and
    answers every later one 200 at once. Records each request's wall-clock arrival, headers
    and body, and how many answers it sent."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.requests: list[dict[str, Any]] = []
        self.answered = 0
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> HoldingReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    first = not receiver.requests
                    receiver.requests.append({"at": time.time(), "headers": dict(self.headers), "body": body})
                if first:
                    receiver._release.wait()
                try:
                    self.send_response(200)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    with receiver._lock:
                        receiver.answered += 1
                except OSError:  # the sender is gone (killed): nobody to answer
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def transition() -> Transition:
    return Transition(
        alert_id="dataset-drift:car_loan::1", rule="dataset-drift", model="car_loan", feature="", severity="critical",
        from_state="inactive", to_state="firing", at=time.time(), window_seq=5, value=0.6, detail={"n_drifted": 4},
    )  # fmt: skip


def test_a_send_in_flight_at_a_kill_is_sent_again_after_its_lease_with_the_same_key_and_delivered_once(
    tmp_path: Path, store_url: str, store: Store
) -> None:
    receiver = HoldingReceiver().start()
    try:
        webhook: dict[str, Any] = {
            "name": "retrain",
            "url": receiver.url,
            "timeout_seconds": TIMEOUT_SECONDS,
            "max_attempts": 5,
        }
        store.apply_alert_transitions([transition()], STATE, webhooks=[WebhookConfig(**webhook)])
        (queued,) = store.webhook_deliveries()
        data = config(tmp_path, storage={"url": store_url}, alerts={"webhooks": [webhook]})

        with ServiceProcess(tmp_path, data) as first:
            wait_for(lambda: receiver.requests, 60, "the first send to reach the receiver")
            (claimed,) = store.webhook_deliveries()
            assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        # The precondition: the kill landed while the send was claimed and in flight. The row
        # is leased (due only after the attempt's deadline + margin), no attempt is recorded,
        # and the receiver never answered.
        (at_kill,) = store.webhook_deliveries()
        assert (at_kill["state"], at_kill["attempts"], at_kill["last_error"]) == ("pending", 0, None)
        assert at_kill["next_attempt_at"] == claimed["next_attempt_at"] > queued["next_attempt_at"]
        lease_end = at_kill["next_attempt_at"]
        first_at = receiver.requests[0]["at"]
        assert first_at <= lease_end <= first_at + lease_seconds(WebhookConfig(**webhook)) + 1
        assert (len(receiver.requests), receiver.answered) == (1, 0)

        with ServiceProcess(tmp_path, data) as second:
            # Precondition of "not before the lease": the new dispatcher was running before it ended.
            assert time.time() < lease_end, "the service restarted only after the lease had run out"
            wait_for(lambda: store.webhook_deliveries(state="delivered"), 120, "the delivery after the lease")
            assert second.stop() in (0, -signal.SIGTERM)
    finally:
        receiver.stop()

    assert len(receiver.requests) == 2, receiver.requests  # the held one and the one delivered, nothing more
    held, sent = receiver.requests
    assert sent["at"] >= lease_end  # claimed again only once the lease had run out
    for header in ("Idempotency-Key", "X-Monitor-Delivery", "Content-Type"):
        assert held["headers"][header] == sent["headers"][header], header
    assert sent["headers"]["Idempotency-Key"] == "dataset-drift:car_loan::1:firing:retrain"
    assert sent["headers"]["X-Monitor-Delivery"] == str(queued["id"])
    assert held["body"] == sent["body"] == bytes(queued["body"])
    (row,) = store.webhook_deliveries()
    assert (row["state"], row["attempts"], row["last_status"]) == ("delivered", 1, 200)
    assert store.webhook_deliveries(state="delivered") == [row]
