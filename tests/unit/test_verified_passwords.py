"""Passwords verified a moment ago (firmware/verified_passwords.py): a
repeated login with the right password skips its scrypt; nothing else does."""

import hashlib

import pytest

from firmware import accounts, verified_passwords
from firmware.config import Store
from firmware.verified_passwords import VerifiedPasswords

GOOD = "right password"


@pytest.fixture
def hashes(monkeypatch):
    """How many times scrypt runs."""
    runs = []
    real = hashlib.scrypt

    def counted(*args, **kwargs):
        runs.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(hashlib, "scrypt", counted)
    return runs


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(verified_passwords, "shared", VerifiedPasswords())
    store = Store.create(tmp_path / "data")
    accounts.add_user(store, "bob", GOOD)
    accounts.add_user(store, "root", GOOD, admin=True)
    accounts.authenticate(store, "nobody", "warms the stand-in hash")
    yield store
    store.close()


def test_the_right_password_costs_one_hash_and_then_none(store, hashes):
    assert [accounts.authenticate_mail(store, "bob", GOOD) for _ in range(5)] == [True] * 5
    assert len(hashes) == 1


def test_a_wrong_password_costs_its_hash_every_time(store, hashes):
    accounts.authenticate_mail(store, "bob", GOOD)
    hashes.clear()
    assert [accounts.authenticate_mail(store, "bob", "guess") for _ in range(3)] == [False] * 3
    assert len(hashes) == 3


def test_an_unknown_name_is_never_remembered(store, hashes):
    # The stand-in hash's own password would otherwise answer quickly the
    # second time, telling unknown names from real ones by timing.
    assert not accounts.authenticate_mail(store, "nobody", "not a real password")
    assert not accounts.authenticate_mail(store, "nobody", "not a real password")
    assert len(hashes) == 2
    assert len(verified_passwords.shared) == 0


def test_a_changed_password_is_checked_again_and_the_old_one_fails(store, hashes):
    assert accounts.authenticate_mail(store, "bob", GOOD)
    accounts.set_password(store, "bob", "a new password")
    hashes.clear()
    assert not accounts.authenticate_mail(store, "bob", GOOD)
    assert accounts.authenticate_mail(store, "bob", "a new password")
    assert len(hashes) == 2


def test_an_administrator_remembered_by_the_web_admin_is_still_no_mail_account(store):
    assert accounts.authenticate_admin(store, "root", GOOD)
    assert not accounts.authenticate_mail(store, "root", GOOD)
    assert accounts.authenticate_mail(store, "bob", GOOD)
    assert not accounts.authenticate_admin(store, "bob", GOOD)


def test_a_deleted_account_is_refused_at_once(store):
    assert accounts.authenticate_mail(store, "bob", GOOD)
    accounts.delete_user(store, "bob")
    assert not accounts.authenticate_mail(store, "bob", GOOD)


def test_a_verification_lasts_the_ttl():
    now = [5_000.0]
    verified = VerifiedPasswords(ttl=60, clock=lambda: now[0])
    verified.remember("pw", "scrypt$stored")
    now[0] += 59
    assert verified.known("pw", "scrypt$stored")
    assert not verified.known("pw", "scrypt$other")
    assert not verified.known("other", "scrypt$stored")
    now[0] += 1
    assert not verified.known("pw", "scrypt$stored")
    assert len(verified) == 0


def test_the_oldest_verification_makes_room():
    verified = VerifiedPasswords(capacity=3)
    for n in range(4):
        verified.remember(f"pw{n}", "scrypt$stored")
    assert len(verified) == 3
    assert not verified.known("pw0", "scrypt$stored")
    assert all(verified.known(f"pw{n}", "scrypt$stored") for n in (1, 2, 3))


def test_nothing_kept_holds_the_password_or_the_hash():
    verified = VerifiedPasswords()
    verified.remember("hunter2-secret", "scrypt$16384$8$1$c2FsdA==$ZGlnZXN0")
    kept = b"".join(verified._verified)
    assert b"hunter2" not in kept and b"c2FsdA" not in kept and len(kept) == 32


def test_hashes_run_one_at_a_time_whatever_the_threads(store, monkeypatch):
    # Two 16 MiB hashes at once swapped a 256 MB guest for 80 s.
    import threading
    running, most, lock = [0], [0], threading.Lock()
    real = hashlib.scrypt

    def watched(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1
    monkeypatch.setattr(hashlib, "scrypt", watched)
    threads = [threading.Thread(target=accounts.authenticate_mail, args=(store, "bob", f"guess {n}"))
               for n in range(6)]
    threads += [threading.Thread(target=accounts.hash_password, args=("a new one",)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert most[0] == 1
