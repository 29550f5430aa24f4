"""Webhook throughput: outbox write rate and delivered events/s, on SQLite and PostgreSQL.

The receiver runs in its own process (a threaded ``http.server`` answering 200) so it does
not share the sender's GIL; PostgreSQL is a throwaway cluster started here (skipped with a
note if the server binaries are missing). Usage: ``python bench/webhooks.py [--n 1000]``.
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from callsense.connectors.outbox import Outbox  # noqa: E402
from callsense.connectors.storage import make_engine  # noqa: E402
from callsense.connectors.webhooks import WebhookEndpoint  # noqa: E402

RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
class S(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def decision(i: int) -> dict[str, object]:
    return {
        "call_id": f"bench-{i:06d}",
        "policy": "default",
        "rule": "angry_twice",
        "action": "escalate",
        "params": {"priority": "high", "reason": "customer angry twice"},
        "at": float(i),
        "evidence": [{"utterance": 3, "emotion": "ANGRY"}],
        "policy_hash": "bench",
    }


def run(label: str, db_url: str, url: str, n: int, concurrency: int) -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    ep = WebhookEndpoint(name="bench", url=url, secret=secret, actions=["escalate"])
    engine = make_engine(db_url)
    outbox = Outbox(engine, [ep], concurrency=concurrency)

    t = time.perf_counter()
    singles = min(300, n)
    for i in range(singles):
        outbox.enqueue(decision(i), [ep])
    single_rate = singles / (time.perf_counter() - t)

    t = time.perf_counter()
    for start in range(singles, n, 100):
        outbox.enqueue_many([decision(i) for i in range(start, min(start + 100, n))], [ep])
    batch_rate = (n - singles) / max(time.perf_counter() - t, 1e-9)

    report = outbox.deliver_pending(90)
    print(
        f"{label:10s} outbox writes: {single_rate:7.0f} decisions/s (one commit each), "
        f"{batch_rate:7.0f}/s (batches of 100); delivered {report.delivered}/{n} in "
        f"{report.elapsed_s:.2f}s = {report.delivered / report.elapsed_s:6.0f} events/s "
        f"(concurrency {concurrency})",
        flush=True,
    )
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1000, help="decisions per database")
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()

    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        url = f"http://127.0.0.1:{receiver.stdout.readline().strip()}/hook"
        with tempfile.TemporaryDirectory() as tmp:
            run("sqlite", f"sqlite:///{tmp}/bench.db", url, args.n, args.concurrency)

        from tests.connectors.conftest import PostgresCluster, postgres_missing_reason

        reason = postgres_missing_reason()
        if reason:
            print(f"postgresql skipped: {reason}")
            return
        cluster = PostgresCluster()
        try:
            run("postgresql", cluster.new_database(), url, args.n, args.concurrency)
        finally:
            cluster.stop()
    finally:
        receiver.terminate()
        receiver.wait()


if __name__ == "__main__":
    main()
