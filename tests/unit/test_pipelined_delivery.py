"""Delivery pipelines MAIL, RCPT and DATA (RFC 2920) to a server that offers
PIPELINING, sends them one at a time to one that does not, and gets every
recipient's result right when some or all of the envelope is refused."""

import asyncio
import socket
import threading

import pytest

from firmware.mail.deliver.smtp import SmtpDelivery
from firmware.mail.route import Destination

MESSAGE = b"Subject: pipelined\r\n\r\n.leading dot\r\nbody\r\n"


@pytest.fixture
def settings(delivery_settings):
    return delivery_settings


class ScriptedServer:
    """A loopback SMTP server on a raw socket that notes which read each
    command line came in, so commands sent in one write share a read."""

    def __init__(self, pipelining: bool, refused: tuple = (), mail_reply: bytes = b"250 2.1.0 Ok",
                 data_reply: bytes = b"354 go"):
        self.pipelining, self.refused = pipelining, refused
        self.mail_reply, self.data_reply = mail_reply, data_reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]
        self.commands: list[tuple[int, bytes]] = []  # (read number, line)
        self.messages: list[bytes] = []
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with connection:
                connection.settimeout(30)
                if not self._session(connection):
                    return

    def _session(self, connection) -> bool:
        connection.sendall(b"220 scripted ESMTP\r\n")
        pending, body, in_data, reads = b"", [], False, 0
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                return True
            reads += 1
            pending += chunk
            replies = []
            while b"\r\n" in pending:
                line, pending = pending.split(b"\r\n", 1)
                if in_data:
                    if line == b".":
                        in_data = False
                        self.messages.append(b"".join(body))
                        body = []
                        replies.append(b"250 2.0.0 queued")
                    else:
                        body.append(line + b"\r\n")
                    continue
                self.commands.append((reads, line))
                replies.append(self._reply(line))
                if line.upper() == b"DATA" and replies[-1].startswith(b"354"):
                    in_data = True
                if line.upper() == b"QUIT":
                    connection.sendall(b"".join(r + b"\r\n" for r in replies))
                    return True
            if replies:
                connection.sendall(b"".join(r + b"\r\n" for r in replies))

    def _reply(self, line: bytes) -> bytes:
        verb = line[:4].upper()
        if verb == b"EHLO":
            return b"250-scripted\r\n250-SIZE 1000000\r\n" \
                   + (b"250-PIPELINING\r\n" if self.pipelining else b"") + b"250 8BITMIME"
        if verb == b"MAIL":
            return self.mail_reply
        if verb == b"RCPT":
            if any(address.encode() in line for address in self.refused):
                return b"550 5.1.1 no such user"
            return b"250 2.1.5 Ok"
        if verb == b"DATA":
            return self.data_reply
        if verb == b"QUIT":
            return b"221 bye"
        return b"250 Ok"

    def transaction(self) -> list[tuple[int, bytes]]:
        return [(n, line) for n, line in self.commands
                if line[:4].upper() in (b"MAIL", b"RCPT", b"DATA")]

    def close(self):
        self.sock.close()


def _deliveries(server, settings, *recipient_lists):
    """Each list of recipients delivered in turn by one agent on one loop
    (so a connection can be reused), then its idle connections closed
    (QUIT) before the server is."""
    async def run():
        delivery = SmtpDelivery(helo_name="gatebox.test")
        results = [await delivery.deliver(Destination("lan", "127.0.0.1", server.port),
                                          "alice@example.com", recipients, MESSAGE, settings)
                   for recipients in recipient_lists]
        await delivery.close_idle()
        return results
    try:
        return asyncio.run(run())
    finally:
        server.close()


def _deliver_once(server, settings, recipients):
    return _deliveries(server, settings, recipients)[0]


def test_the_envelope_goes_out_in_one_write_when_the_server_offers_pipelining(settings):
    server = ScriptedServer(pipelining=True, refused=("ghost@example.com",))
    results = _deliver_once(server, settings,
                            ["bob@example.com", "ghost@example.com", "carol@example.com"])
    assert results["bob@example.com"].status == results["carol@example.com"].status == "sent"
    assert results["ghost@example.com"].status == "perm"
    assert "550 5.1.1" in results["ghost@example.com"].detail
    transaction = server.transaction()
    assert [line[:4] for _, line in transaction] == [b"MAIL", b"RCPT", b"RCPT", b"RCPT", b"DATA"]
    assert len({read for read, _ in transaction}) == 1, transaction
    assert server.messages == [MESSAGE.replace(b"\r\n.leading", b"\r\n..leading")]


def test_commands_go_one_at_a_time_to_a_server_without_pipelining(settings):
    server = ScriptedServer(pipelining=False)
    results = _deliver_once(server, settings, ["bob@example.com", "carol@example.com"])
    assert {r.status for r in results.values()} == {"sent"}
    reads = [read for read, _ in server.transaction()]
    assert len(reads) == 4 and len(set(reads)) == 4, server.transaction()
    assert len(server.messages) == 1


def test_a_refused_sender_refuses_every_recipient_and_sends_no_message(settings):
    server = ScriptedServer(pipelining=True, mail_reply=b"451 4.3.0 try later",
                            data_reply=b"503 5.5.1 no valid recipients")
    results = _deliver_once(server, settings, ["bob@example.com", "carol@example.com"])
    assert {r.status for r in results.values()} == {"temp"}
    assert all("451 4.3.0" in r.detail for r in results.values())
    assert server.messages == []
    assert [line.upper() for _, line in server.commands][-2:] == [b"RSET", b"QUIT"]


def test_a_354_after_every_recipient_was_refused_gets_an_empty_message_and_the_connection_lives_on(
        settings):
    # RFC 2920 has the server refuse such a DATA; one that answers 354 gets a
    # lone dot, so the next transaction on the reused connection starts clean.
    server = ScriptedServer(pipelining=True, refused=("ghost@example.com", "nobody@example.com"))
    results, second = _deliveries(server, settings, ["ghost@example.com", "nobody@example.com"],
                                  ["bob@example.com"])
    assert {r.status for r in results.values()} == {"perm"}
    assert second["bob@example.com"].status == "sent"
    assert server.messages == [b"", MESSAGE.replace(b"\r\n.leading", b"\r\n..leading")]
    assert server.connections == 1
