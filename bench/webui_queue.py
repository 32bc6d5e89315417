"""How long the Messages in Queue page takes with 100,000 queued messages.

Fills a fresh box's spool directly (same file format as Spool.write, without
the per-file fsync, which only slows the set-up), signs in to the web admin
through its real login form, then requests the queue page repeatedly: every
sort order, both directions, first, middle and last pages, in every view (All, Waiting, Held, Undeliverable).
Prints p50/p95 of the request time (Flask's test client: routing, sign-in
check, index sync, query, template); the first request, which builds the
index from the files, is reported on its own.

    .venv/bin/python bench/webui_queue.py                # 100,000 messages, 200 requests
    .venv/bin/python bench/webui_queue.py --messages 20000 --requests 100
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware import accounts  # noqa: E402
from firmware.config import Store  # noqa: E402
from firmware.mail.queue import MAGIC, Envelope, Recipient, Spool, new_queue_id  # noqa: E402

GOAL_P95_MS = 300.0
PASSWORD = "benchmark password"


def fill_spool(spool: Spool, count: int) -> float:
    started = time.perf_counter()
    now = time.time()
    body = b"From: someone@example.net\r\nTo: user@example.com\r\nSubject: bench\r\n\r\nhello\r\n"
    for number in range(count):
        qid = new_queue_id()
        state = "hold" if number % 10 == 0 else "deferred"
        envelope = Envelope(id=qid, sender=f"sender{random.randrange(5000)}@example.net",
                            recipients=[Recipient(f"user{number % 300}@example.com")],
                            received=now - random.uniform(0, 5 * 86400), size=len(body),
                            subject=f"message {number}", header_from=f"Sender {number % 977} <s@example.net>",
                            attempts=3, last_error="connect to 192.0.2.1:25: timed out")
        with open(spool.dir(state) / qid, "wb") as out:
            out.write(MAGIC + envelope.to_json() + b"\n" + body)
    return time.perf_counter() - started


def sign_in(client):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"csrf_token": token, "name": "admin", "password": PASSWORD})
    assert response.status_code == 302, response.status_code


def percentile(values: list, fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "webui_queue.json"))
    args = parser.parse_args()

    from webui import create_app
    from webui.email_server.queue import PAGE_SIZE

    with tempfile.TemporaryDirectory(prefix="gatebox-bench-") as tmp:
        data = Path(tmp)
        store = Store.create(data)
        accounts.add_user(store, "admin", PASSWORD, admin=True)
        store.close()
        spool = Spool(data / "queue")
        spool.create()
        fill_seconds = fill_spool(spool, args.messages)
        print(f"wrote {args.messages} queue files in {fill_seconds:.1f} s", flush=True)

        app = create_app(data, secure_cookies=False)
        client = app.test_client()
        sign_in(client)

        started = time.perf_counter()
        first = client.get("/email-server/queue")
        build_ms = (time.perf_counter() - started) * 1000
        assert first.status_code == 200
        shown = re.search(r"(\d+) message\(s\) shown", first.get_data(as_text=True)).group(1)
        assert int(shown) == args.messages, shown
        print(f"first request (builds the index from the files): {build_ms:.0f} ms", flush=True)
        time.sleep(2.5)  # past the index's "too recent to trust" window for directory mtimes

        from firmware.mail.queue_index import VIEWS
        sizes = {view: sum(len(spool.ids(state)) for state in states) for view, states in VIEWS.items()}
        urls = []
        for number in range(args.requests):
            sort = ("id", "date", "from")[number % 3]
            order = ("asc", "desc")[number // 3 % 2]
            view = random.choice(list(VIEWS))
            last_page = max(1, -(-sizes[view] // PAGE_SIZE))
            page = random.choice([1, 2, last_page // 2, last_page])
            urls.append(f"/email-server/queue?sort={sort}&order={order}&page={page}&view={view}")
        timings = []
        print(f"timing {len(urls)} requests ...", flush=True)
        for url in urls:
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)

    result = {
        "messages": args.messages, "requests": args.requests, "page_size": PAGE_SIZE,
        "index_build_ms": round(build_ms, 1),
        "p50_ms": round(statistics.median(timings), 1), "p95_ms": round(percentile(timings, 0.95), 1),
        "max_ms": round(max(timings), 1), "goal_p95_ms": GOAL_P95_MS,
        "cpu": os.cpu_count(), "python": sys.version.split()[0],
    }
    print(json.dumps(result, indent=2))
    print(f"p95 {result['p95_ms']} ms: {'meets' if result['p95_ms'] < GOAL_P95_MS else 'MISSES'} "
          f"the goal of {GOAL_P95_MS:.0f} ms")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
