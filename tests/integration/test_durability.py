"""Nothing accepted is lost: kill -9 of the running box while clients stream
mail, then restart; every message that got 250 reaches the LAN server."""

import re
import smtplib
import threading
import time

from tests.support.net import wait_for_banner, wait_until

CLIENTS = 4
TARGET_BEFORE_KILL = 60
TARGET_TOTAL = 150


class Streamer:
    """Client threads sending numbered messages as fast as the box takes them."""

    def __init__(self, box):
        self.box = box
        self.acknowledged: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.next_number = 0
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(CLIENTS)]

    def _number(self) -> int:
        with self.lock:
            self.next_number += 1
            return self.next_number

    def _run(self, worker: int):
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                with smtplib.SMTP(self.box.host, self.box.smtp_port, timeout=10,
                                  local_hostname="pc.office.lan") as client:
                    while not self.stop.is_set():
                        message_id = f"<load-{worker}-{self._number()}@durability.test>"
                        client.sendmail("staff@example.com", ["bob@example.com"],
                                        f"Message-ID: {message_id}\r\nSubject: load\r\n\r\n"
                                        + "line of text\r\n" * 200)
                        with self.lock:
                            self.acknowledged.add(message_id)
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)  # the box is down or restarting: try again

    def count(self) -> int:
        with self.lock:
            return len(self.acknowledged)

    def start(self):
        for thread in self.threads:
            thread.start()

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def delivered_ids(sink) -> set[str]:
    found = set()
    for message in sink.messages():
        found.update(m.decode() for m in re.findall(rb"<load-\d+-\d+@durability\.test>", message))
    return found


def test_kill_9_under_load_loses_no_accepted_message(make_box, sink):
    box = make_box(**{"email.mail_server_address": sink.address,
                      "email.max_connections_per_host": "unlimited"})
    box.smtpd_processes = 2  # at the speed the box relays at on two cores
    box.start()
    assert "(2 smtpd processes)" in box.log()
    streamer = Streamer(box)
    streamer.start()
    try:
        wait_until(lambda: streamer.count() >= TARGET_BEFORE_KILL, timeout=60,
                   what="messages accepted before the crash")
        box.kill9()
        acknowledged_at_kill = streamer.count()
        box.start()
        wait_until(lambda: streamer.count() >= max(TARGET_TOTAL, acknowledged_at_kill + 20),
                   timeout=60, what="messages accepted after the restart")
    finally:
        streamer.finish()
    acknowledged = set(streamer.acknowledged)
    wait_until(lambda: acknowledged <= delivered_ids(sink), timeout=90,
               what=f"all {len(acknowledged)} acknowledged messages at the LAN server")
    assert len(acknowledged) >= TARGET_TOTAL
    assert not acknowledged - delivered_ids(sink)


def test_sigterm_stops_the_box_cleanly_and_keeps_queued_mail(make_box, sink):
    box = make_box(**{"email.mail_server_address": "127.0.0.1:9"}).start()  # LAN server down
    with smtplib.SMTP(box.host, box.smtp_port, timeout=10) as client:
        client.sendmail("staff@example.com", ["bob@example.com"], "Subject: wait\r\n\r\nx\r\n")
    wait_until(lambda: box.queue_ids("deferred"), what="the message to be deferred")
    started = time.monotonic()
    assert box.stop() == 0
    assert time.monotonic() - started < 10
    assert "stopped" in box.log()
    assert len(box.queue_ids("deferred")) == 1
    # The LAN server is back: after a restart the kept message goes out.
    box.configure(**{"email.mail_server_address": sink.address})
    box.start()
    box.cli("queue", "flush")
    wait_until(lambda: sink.count() == 1, what="delivery after restart")
