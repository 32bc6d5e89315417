"""The asyncio delivery agent against scripted servers on loopback: each AUTH
mechanism it speaks, the refusals that hold mail rather than bounce it, a
server that stalls, one that talks garbage, and an idle connection the
server dropped."""

from __future__ import annotations

import asyncio
import base64
import hmac

import pytest

from firmware.mail.deliver.smtp import SmtpDelivery
from firmware.mail.route import Destination

MESSAGE = b"Subject: auth\r\n\r\nbody\r\n"
LOGIN, PASSWORD = "office@isp.test", "s3cret \u00e9"
CHALLENGE = b"<1896.697170952@isp.test>"


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


class ScriptedServer:
    """An SMTP server on the test's own loop that offers the given AUTH
    mechanisms and checks LOGIN and PASSWORD with each of them."""

    def __init__(self, mechanisms: str = "PLAIN LOGIN", *, stall_after: bytes | None = None,
                 greeting: bytes = b"220 isp.test ESMTP", refuse: tuple = (),
                 inject_after_starttls: bool = False, auth_keyword: bytes = b"AUTH "):
        self.mechanisms, self.stall_after, self.greeting = mechanisms, stall_after, greeting
        self.refuse, self.inject_after_starttls = refuse, inject_after_starttls
        self.auth_keyword = auth_keyword
        self.lines: list[bytes] = []
        self.messages: list[bytes] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self):
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self):
        for writer in self.writers:
            writer.transport.abort()
        self.server.close()
        await self.server.wait_closed()

    async def _session(self, reader, writer):
        self.connections += 1
        self.writers.append(writer)

        async def line() -> bytes:
            raw = (await reader.readline()).rstrip(b"\r\n")
            self.lines.append(raw)
            return raw

        async def say(reply: bytes):
            writer.write(reply + b"\r\n")
            await writer.drain()
        await say(self.greeting)
        while command := await line():
            if self.stall_after is not None and command.upper().startswith(self.stall_after):
                await asyncio.sleep(3600)
            verb = command[:4].upper()
            if verb == b"EHLO":
                starttls = b"250-STARTTLS\r\n" if self.inject_after_starttls else b""
                await say(b"250-isp.test\r\n250-PIPELINING\r\n" + starttls + b"250 "
                          + self.auth_keyword + self.mechanisms.encode())
            elif command.upper() == b"STARTTLS":
                # The attack: a reply in clear text behind the 220, for the
                # client to take as the encrypted session's.
                await say(b"220 go ahead\r\n250 injected")
            elif verb == b"AUTH":
                await say(await self._authenticate(command.split(b" ")[1:], line, say))
            elif verb == b"DATA":
                await say(b"354 go")
                body = []
                while (data := await reader.readline()) != b".\r\n":
                    body.append(data)
                self.messages.append(b"".join(body))
                await say(b"250 2.0.0 queued")
            elif verb == b"QUIT":
                await say(b"221 bye")
                break
            else:
                await say(b"250 ok")
        writer.close()

    async def _authenticate(self, words, line, say) -> bytes:
        mechanism = words[0].upper().decode()
        if mechanism in self.refuse:
            return b"535 5.7.8 not with " + mechanism.encode()
        if mechanism == "PLAIN":
            good = base64.b64decode(words[1]) == f"\0{LOGIN}\0{PASSWORD}".encode()
        elif mechanism == "LOGIN":
            user = base64.b64decode(words[1])
            await say(b"334 " + b64(b"Password:"))
            good = (user, base64.b64decode(await line())) == (LOGIN.encode(), PASSWORD.encode())
        else:
            await say(b"334 " + b64(CHALLENGE))
            user, _, digest = base64.b64decode(await line()).partition(b" ")
            expected = hmac.new(PASSWORD.encode(), CHALLENGE, "md5").hexdigest().encode()
            good = user == LOGIN.encode() and hmac.compare_digest(digest, expected)
        return b"235 2.7.0 authenticated" if good else b"535 5.7.8 credentials invalid"


def run(server: ScriptedServer, settings, *, password: str = PASSWORD, deliveries: int = 1,
        between=None, recipient: str = "bob@example.net"):
    """Deliveries to `server` as the smarthost with the given password, one
    after another on one agent; the results and the server's record."""
    async def go():
        await server.start()
        delivery = SmtpDelivery(helo_name="gatebox.test")
        destination = Destination("smarthost", "127.0.0.1", server.port, LOGIN, password)
        results = []
        try:
            for n in range(deliveries):
                if n and between is not None:
                    await between(server)
                results.append(await delivery.deliver(destination, "alice@example.com",
                                                      [recipient], MESSAGE, settings))
            await delivery.close_idle()
        finally:
            await server.stop()
        return results
    return asyncio.run(asyncio.wait_for(go(), 30))


@pytest.mark.parametrize("offered, used", [
    ("CRAM-MD5 PLAIN LOGIN", b"AUTH CRAM-MD5"),
    ("LOGIN PLAIN", b"AUTH PLAIN"),
    ("LOGIN", b"AUTH LOGIN"),
])
def test_each_auth_mechanism_authenticates_and_the_strongest_offered_is_used(
        delivery_settings, offered, used):
    server = ScriptedServer(offered)
    [results] = run(server, delivery_settings)
    assert results["bob@example.net"].status == "sent", results
    assert [line for line in server.lines if line.startswith(b"AUTH")][0].startswith(used)
    assert server.messages == [MESSAGE]
    # The password never crosses the wire in clear.
    assert not any(PASSWORD.encode() in line for line in server.lines)


@pytest.mark.parametrize("offered", ["PLAIN", "CRAM-MD5"])
def test_a_wrong_password_holds_the_mail_and_sends_nothing(delivery_settings, offered):
    server = ScriptedServer(offered)
    [results] = run(server, delivery_settings, password="wrong")
    result = results["bob@example.net"]
    assert result.status == "temp"
    assert "SASL authentication failed" in result.detail and "535" in result.detail
    assert server.messages == [] and not any(line.startswith(b"MAIL") for line in server.lines)


def test_a_server_with_no_mechanism_gatebox_speaks_holds_the_mail(delivery_settings):
    server = ScriptedServer("GSSAPI NTLM")
    [results] = run(server, delivery_settings)
    result = results["bob@example.net"]
    assert result.status == "temp" and "no AUTH mechanism" in result.detail
    assert "GSSAPI NTLM" in result.detail and server.messages == []


def test_a_server_that_stalls_after_mail_from_is_a_temporary_failure_within_the_limit(
        delivery_settings):
    settings = {**delivery_settings.values, "email.timeout_command_min": 0.01}  # 0.6 s
    server = ScriptedServer(stall_after=b"MAIL")
    [results] = run(server, settings)
    result = results["bob@example.net"]
    assert result.status == "temp" and "timed out" in result.detail, result
    assert server.messages == []


def test_garbage_for_a_greeting_is_a_temporary_failure(delivery_settings):
    server = ScriptedServer(greeting=b"HTTP/1.1 400 Bad Request")
    [results] = run(server, delivery_settings)
    result = results["bob@example.net"]
    assert result.status == "temp" and "not an SMTP reply" in result.detail, result


def test_an_idle_connection_the_server_dropped_is_replaced_and_the_mail_goes(delivery_settings):
    async def drop_connections(server):
        for writer in server.writers:
            writer.transport.abort()
    server = ScriptedServer()
    first, second = run(server, delivery_settings, deliveries=2, between=drop_connections)
    assert first["bob@example.net"].status == second["bob@example.net"].status == "sent"
    assert server.messages == [MESSAGE, MESSAGE] and server.connections == 2


def test_a_refused_mechanism_is_followed_by_the_next_one_offered(delivery_settings):
    # A server may offer CRAM-MD5 and keep only hashed passwords.
    server = ScriptedServer("CRAM-MD5 PLAIN", refuse=("CRAM-MD5",))
    [results] = run(server, delivery_settings)
    assert results["bob@example.net"].status == "sent", results
    auth = [line.split(b" ")[1] for line in server.lines if line.startswith(b"AUTH")]
    assert auth == [b"CRAM-MD5", b"PLAIN"] and server.messages == [MESSAGE]


def test_an_address_that_needs_smtputf8_is_not_sent_to_a_server_without_it(delivery_settings):
    server = ScriptedServer()
    [results] = run(server, delivery_settings, recipient="b\u00f6b@example.net")
    result = results["b\u00f6b@example.net"]
    assert result.status == "perm" and "5.6.7" in result.detail, result
    assert not any(line.startswith((b"MAIL", b"RCPT")) for line in server.lines)


def test_clear_text_behind_the_starttls_reply_ends_the_session(delivery_settings):
    server = ScriptedServer(inject_after_starttls=True)
    [results] = run(server, delivery_settings)
    result = results["bob@example.net"]
    assert result.status == "temp" and "after the STARTTLS reply" in result.detail, result
    assert server.messages == [] and not any(line.startswith(b"AUTH") for line in server.lines)


def test_the_old_style_auth_line_is_understood(delivery_settings):
    server = ScriptedServer("LOGIN PLAIN", auth_keyword=b"AUTH=")
    [results] = run(server, delivery_settings)
    assert results["bob@example.net"].status == "sent", results
    assert [line for line in server.lines if line.startswith(b"AUTH")][0].startswith(b"AUTH PLAIN")
