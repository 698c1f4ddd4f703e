"""Replay-safe signatures on a real delivery: a receiver on loopback checks every request with
the verification recipe exactly as README's "Retraining webhooks" section prints it, and
answers 401 when it fails. The real delivery passes; the captured request replayed outside
the tolerance, or with its timestamp or body changed, does not."""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from support import ROOT, free_port, wait_for

from alerts.dispatcher import WebhookDispatcher
from alerts.transition import Transition
from alerts.webhooks import WebhookConfig
from monitor.metrics import Metrics
from monitor.store.database import Store

SECRET = b"replay-test-secret"
STATE = {"format_version": 1, "rules": [], "states": []}


def readme_recipe() -> dict[str, Any]:
    """The namespace of the README's verification snippet, run as printed."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Retraining webhooks", 1)[1].split("\n### ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md#retraining-webhooks", "exec"), namespace)
    return namespace


class VerifyingReceiver:
    """Answers 200 when ``verify`` (the README's) accepts the request, else 401; its clock is
    ``at`` when set, else ours plus ``step`` seconds per request received before ("that much
    later"). The first ``busy`` requests get 503, whatever their signature."""

    def __init__(self, verify: Callable[..., bool], step: float = 0.0, busy: int = 0):
        self.verify, self.step, self.busy = verify, step, busy
        self.at: float | None = None
        self.url = f"http://127.0.0.1:{free_port()}/hook"
        self.requests: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> VerifyingReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                n = len(receiver.requests)
                now = time.time() + receiver.step * n if receiver.at is None else receiver.at
                ok = receiver.verify(SECRET, self.headers, body, now=now)
                receiver.requests.append({"headers": dict(self.headers), "body": body, "accepted": ok})
                self.send_response(503 if n < receiver.busy else 200 if ok else 401)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        port = int(self.url.split(":")[2].split("/")[0])
        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


def test_a_real_delivery_verifies_and_its_replay_outside_the_tolerance_is_refused(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET.decode())
    recipe = readme_recipe()
    tolerance = recipe["TOLERANCE_SECONDS"]
    assert tolerance == 300
    with VerifyingReceiver(recipe["verify"]) as receiver:
        webhook = WebhookConfig(name="retrain", url=receiver.url, secret_env="HOOK_SECRET")
        transition = Transition(
            alert_id="dataset-drift:car_loan::1", rule="dataset-drift", model="car_loan", feature="",
            severity="critical", from_state="inactive", to_state="firing", at=time.time(), window_seq=5, value=0.6,
            detail={},
        )  # fmt: skip
        store.apply_alert_transitions([transition], STATE, webhooks=[webhook])
        before = int(time.time())
        dispatcher = WebhookDispatcher(store, [webhook], Metrics(CollectorRegistry()), poll_seconds=0.02)
        dispatcher.start()
        try:
            (row,) = wait_for(lambda: store.webhook_deliveries(state="delivered"), 60, "the delivery")
        finally:
            dispatcher.stop()
        after = int(time.time())
        (request,) = receiver.requests
        assert request["accepted"] and row["attempts"] == 1
        headers, body = request["headers"], request["body"]
        assert body == bytes(row["body"])  # the bytes rendered when enqueued
        timestamp = int(headers["X-Monitor-Timestamp"])
        assert before <= timestamp <= after
        mac = hmac.new(SECRET, b"%d." % timestamp + body, hashlib.sha256).hexdigest()
        assert headers["X-Monitor-Signature"] == f"sha256={mac}"

        def replay(at: float, **changes: Any) -> int:
            """The captured request again, the receiver's clock at ``at``."""
            receiver.at = at
            content = changes.pop("body", body)
            return httpx.post(receiver.url, content=content, headers={**headers, **changes}, timeout=30).status_code

        # Inside the tolerance a replay verifies: the Idempotency-Key is what turns it away.
        assert replay(timestamp + tolerance) == 200
        assert replay(timestamp + tolerance + 1) == 401  # the captured request, 301 s later
        assert replay(timestamp - tolerance - 1) == 401  # a timestamp from the future
        # Moving the timestamp forward without the secret breaks the signature.
        assert replay(timestamp + tolerance + 1, **{"X-Monitor-Timestamp": str(timestamp + tolerance + 1)}) == 401
        assert replay(timestamp, body=body.replace(b"car_loan", b"car_lo4n")) == 401
        assert replay(timestamp, **{"X-Monitor-Timestamp": "1e9"}) == 401
        assert [r["accepted"] for r in receiver.requests] == [True, True, False, False, False, False, False]


def test_every_attempt_signs_the_same_body_with_its_own_timestamp(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three attempts (the receiver answers 503 twice), the dispatcher's clock and the
    receiver's 1,000 s further on at each: each attempt carries the same body, its own
    timestamp and a signature over both, which the README's recipe accepts."""
    monkeypatch.setenv("HOOK_SECRET", SECRET.decode())
    step = 1000.0
    with VerifyingReceiver(readme_recipe()["verify"], step=step, busy=2) as receiver:
        webhook = WebhookConfig(name="retrain", url=receiver.url, secret_env="HOOK_SECRET", backoff_base_seconds=0.05)
        transition = Transition(
            alert_id="dataset-drift:iris::1", rule="dataset-drift", model="iris", feature="", severity="critical",
            from_state="inactive", to_state="firing", at=time.time(), window_seq=5, value=0.6, detail={},
        )  # fmt: skip
        store.apply_alert_transitions([transition], STATE, webhooks=[webhook])

        def clock() -> float:  # what the receiver's clock says before the next request
            return time.time() + step * len(receiver.requests)

        dispatcher = WebhookDispatcher(store, [webhook], Metrics(CollectorRegistry()), poll_seconds=0.02, clock=clock)
        dispatcher.start()
        try:
            (row,) = wait_for(lambda: store.webhook_deliveries(state="delivered"), 60, "the delivery")
        finally:
            dispatcher.stop()
    assert row["attempts"] == 3
    assert [r["accepted"] for r in receiver.requests] == [True, True, True]
    assert {r["body"] for r in receiver.requests} == {bytes(row["body"])}
    stamps = [int(r["headers"]["X-Monitor-Timestamp"]) for r in receiver.requests]
    assert [b - a >= step - 1 for a, b in zip(stamps, stamps[1:], strict=False)] == [True, True]
    assert len({r["headers"]["X-Monitor-Signature"] for r in receiver.requests}) == 3
