"""Dovecot's logins through the auth service: the sh client program Dovecot
runs, over the real Unix socket, against the accounts table. Every request
is hostile until parsed; no answer, or half of one, is a temporary failure;
a storm of logins runs a few checks at a time."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from softpaks.mailserver import auth_service, checkpassword
from tests.support.auth_service import checkpassword_client, login
from tests.support.net import wait_until

from test_mailserver_units import mail_store  # noqa: F401 (a fixture: bob and carol, licensed)

PASSWORD = "pw-123456"       # mail_store's


@pytest.fixture
def served(mail_store, tmp_path):  # noqa: F811
    with checkpassword_client(mail_store.data_dir, tmp_path) as running:
        yield running


@pytest.fixture
def client(served):
    return served[0]


@pytest.fixture
def service(served):
    return served[1]


def test_a_login_is_answered_with_the_users_maildir(client):
    ok = login(client, "Bob@example.com", PASSWORD)
    assert ok.returncode == 0, ok.stderr
    assert "USER=bob nologin= mail=maildir:" in ok.stdout
    assert "extra=userdb_uid userdb_gid userdb_home userdb_mail" in ok.stdout
    assert login(client, "bob", "wrong").returncode == checkpassword.AUTH_FAILED
    assert login(client, "nobody", PASSWORD).returncode == checkpassword.AUTH_FAILED


def test_the_socket_and_its_directory_are_the_box_users_alone(service):
    assert os.stat(service.directory).st_mode & 0o777 == 0o700
    assert os.stat(service.socket_path).st_mode & 0o777 == 0o600


def test_a_directory_someone_else_can_write_to_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(RuntimeError, match="not a private directory"):
        auth_service.private_directory(shared)


@pytest.mark.parametrize("request_bytes", [
    b"bob-without-a-password",                      # no NUL: not a request
    b"bob\0" + b"x" * (auth_service.REQUEST_LIMIT + 10) + b"\0",   # past the limit
])
def test_a_malformed_or_oversized_request_is_a_temporary_failure(service, request_bytes):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(service.socket_path))
        sock.sendall(b"127.0.0.1\0imap\0" + request_bytes)
        sock.shutdown(socket.SHUT_WR)
        answer = b"".join(iter(lambda: sock.recv(4096), b""))
    assert answer.decode() == checkpassword.reply_script(checkpassword.TEMPORARY_FAILURE)


def test_no_service_means_a_temporary_failure_not_a_wrong_password(tmp_path):
    client = checkpassword.write_client(tmp_path, tmp_path / "no-such-socket")
    assert login(client, "bob", PASSWORD).returncode == checkpassword.TEMPORARY_FAILURE


@pytest.mark.parametrize("answer", [
    "",                                               # the service died before answering
    'export USER=bob\nexec "$@"\n',                   # cut short: no end mark
])
def test_an_answer_cut_short_is_not_run(tmp_path, answer):
    path = tmp_path / "s"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(1)

    def answer_once():
        connection, _ = listener.accept()
        with connection:
            while connection.recv(4096):
                pass
            connection.sendall(answer.encode())
    server = threading.Thread(target=answer_once)
    server.start()
    try:
        client = checkpassword.write_client(tmp_path, path)
        marker = tmp_path / "reply-ran"
        ran = login(client, "bob", PASSWORD, reply=["/bin/sh", "-c", f"touch {marker}"])
    finally:
        server.join(30)
        listener.close()
    assert ran.returncode == checkpassword.TEMPORARY_FAILURE
    assert not marker.exists()


def test_the_answer_carries_any_value_verbatim_and_runs_nothing_of_it(tmp_path):
    hostile = "x'; touch {0}; echo '$(touch {0})`touch {0}`\"\nline two".format(tmp_path / "ran")
    script = checkpassword.reply_script({"USER": "bob", "reason": hostile, "nologin": "Y"})
    shown = subprocess.run(["/bin/sh", "-c", script, "sh", "/bin/sh", "-c",
                            'printf %s "$reason"'], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and shown.stdout == hostile
    assert not (tmp_path / "ran").exists()


def test_a_login_storm_runs_a_few_checks_at_a_time_and_answers_every_login(client, monkeypatch):
    running, most, lock = [0], [0], threading.Lock()
    real = checkpassword.check

    def counted(*args):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.05)    # a check as slow as a real password hash: the logins overlap
            return real(*args)
        finally:
            with lock:
                running[0] -= 1
    monkeypatch.setattr(checkpassword, "check", counted)
    users = ["bob", "carol"] * 10
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda user: login(client, user, PASSWORD), users))
    assert [a.returncode for a in answers] == [0] * 20, [a.stderr for a in answers]
    assert all(f"USER={user} " in a.stdout for user, a in zip(users, answers))
    assert 2 <= most[0] <= auth_service.CONCURRENT


def test_the_client_is_sh_and_socat_not_python(client):
    text = client.read_text()
    assert text.startswith("#!/bin/sh\n") and "python" not in text
    assert checkpassword.SOCAT in text


def test_a_login_that_waited_too_long_for_a_turn_is_answered_unchecked(client, monkeypatch):
    # Its client program would give up soon: checking it then would cost a
    # hash and count an attempt for a login already answered.
    monkeypatch.setattr(auth_service, "WAIT_SECONDS", 0.5)
    release, checked = threading.Event(), []
    real = checkpassword.check

    def held(*args):
        checked.append(args[1])
        release.wait(60)
        return real(*args)
    monkeypatch.setattr(checkpassword, "check", held)
    holders = ["bob", "carol"]
    assert len(holders) == auth_service.CONCURRENT
    with ThreadPoolExecutor(auth_service.CONCURRENT) as pool:
        holding = [pool.submit(login, client, user, PASSWORD) for user in holders]
        wait_until(lambda: len(checked) == auth_service.CONCURRENT, 30, 0.01, "the turns taken")
        late = login(client, "bob", "another password")
        release.set()
        answers = [future.result(60) for future in holding]
    assert late.returncode == checkpassword.TEMPORARY_FAILURE
    assert sorted(checked) == holders, "the late login's password was never checked"
    assert [a.returncode for a in answers] == [0] * auth_service.CONCURRENT


def test_the_same_login_at_once_shares_one_check_and_a_later_one_is_checked_again(
        client, monkeypatch):
    release, checked = threading.Event(), []
    real = checkpassword.check

    def held(*args):
        checked.append((args[1], args[2]))
        release.wait(60)
        return real(*args)
    monkeypatch.setattr(checkpassword, "check", held)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(login, client, "bob", PASSWORD)
        wait_until(lambda: len(checked) == 1, 30, 0.01, "the first check under way")
        same = [pool.submit(login, client, "bob", PASSWORD) for _ in range(5)]
        wrong = [pool.submit(login, client, "bob", "wrong") for _ in range(2)]
        # The wrong password is a login of its own: it takes the other turn.
        wait_until(lambda: len(checked) == 2, 30, 0.01, "the wrong password's check")
        release.set()
        answers = [f.result(60) for f in [first, *same]]
        refused = [f.result(60) for f in wrong]
    assert [a.returncode for a in answers] == [0] * 6
    assert all("USER=bob " in a.stdout for a in answers)
    assert [a.returncode for a in refused] == [checkpassword.AUTH_FAILED] * 2
    assert sorted(checked) == sorted([("bob", "wrong"), ("bob", PASSWORD)])
    # Nothing is remembered after the check: the next login is checked anew.
    assert login(client, "bob", PASSWORD).returncode == 0
    assert len(checked) == 3


def test_a_request_not_sent_in_time_is_a_temporary_failure_and_the_wait_counts_from_it(
        service, client, monkeypatch):
    # One budget from the connection: a login that took its time to send its
    # request has that much less to wait for a turn.
    monkeypatch.setattr(auth_service, "REQUEST_SECONDS", 0.5)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(service.socket_path))
        sock.sendall(b"127.0.0.1\0imap\0bob\0")    # and never the rest, nor its end
        answer = b"".join(iter(lambda: sock.recv(4096), b""))
    assert answer.decode() == checkpassword.reply_script(checkpassword.TEMPORARY_FAILURE)
    monkeypatch.setattr(auth_service, "REQUEST_SECONDS", 30.0)
    monkeypatch.setattr(auth_service, "WAIT_SECONDS", 1.0)
    checked = []
    real = checkpassword.check
    monkeypatch.setattr(checkpassword, "check", lambda *args: checked.append(args[1]) or real(*args))
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(service.socket_path))
        time.sleep(1.5)    # the sending takes longer than the whole wait allows
        sock.sendall(f"127.0.0.1\0imap\0bob\0{PASSWORD}\0".encode())
        sock.shutdown(socket.SHUT_WR)
        answer = b"".join(iter(lambda: sock.recv(4096), b""))
    assert answer.decode() == checkpassword.reply_script(checkpassword.TEMPORARY_FAILURE)
    assert checked == [], "a login past its budget is never checked"
    monkeypatch.setattr(auth_service, "WAIT_SECONDS", 45.0)
    assert login(client, "bob", PASSWORD).returncode == 0, "a prompt one still is"
