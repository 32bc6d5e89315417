"""The scanning engine against Debian's real clamd: our INSTREAM client
(ping, version, verdicts, the size limit, failures), reloads, and the
SoftPak's own clamd started as a child with its files under the data
directory. clamd runs with the tiny offline database of tests/support/clamd.py;
only the names that database gives are asserted."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import signal
import socket
import subprocess
import threading
import zipfile
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest

from firmware.config.store import Store
from softpaks.antivirus import clamd_service, memory, paths
from softpaks.antivirus.clamd_client import (Clamd, ScannerUnavailable, ScanTooLarge,
                                             parse_version)
from softpaks.antivirus.clamd_service import ClamdService, ExternalClamdService
from softpaks.antivirus.settings import ENABLED
from tests.support.clamd import (CLAM_EXE, CLAM_EXE_NAME, EICAR_NAME, ClamdProcess, clamd,  # noqa: F401
                                 eicar_bytes, extra_signature, tiny_database)
from tests.support.net import wait_until


def found(finding, name: str) -> bool:
    # clamd marks signatures outside the official databases ".UNOFFICIAL".
    return finding is not None and finding.name in (name, f"{name}.UNOFFICIAL")


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def message_with(attachment: bytes, filename: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "outside@example.net"
    message["To"] = "jane@example.com"
    message["Subject"] = "the file you asked for"
    message.set_content("See the attachment.\n")
    message.add_attachment(attachment, maintype="application", subtype="octet-stream",
                           filename=filename)
    return message


def nested_message(attachment: bytes) -> bytes:
    """EICAR base64-encoded in a part of a message forwarded inside another."""
    inner = message_with(attachment, "invoice.com")
    outer = EmailMessage()
    outer["From"] = "forwarder@example.net"
    outer["To"] = "jane@example.com"
    outer["Subject"] = "Fwd: the file you asked for"
    outer.set_content("Forwarded message below.\n")
    outer.add_attachment(inner)
    return outer.as_bytes()


def clamd_engine_version() -> str:
    output = subprocess.run([clamd_service.CLAMD, "--version"], capture_output=True, text=True,
                            timeout=30, check=True).stdout
    return re.match(r"ClamAV ([\d.]+)", output).group(1)


# ---- the client against a running clamd --------------------------------------

def test_ping_answers_and_version_names_the_engine(clamd):
    client = clamd.client()
    assert client.ping_sync() is True
    raw = client.version_sync()
    engine, signature_version, signature_date = parse_version(raw)
    assert raw.startswith("ClamAV ")
    assert engine == clamd_engine_version()
    # Only local signatures: clamd has no official database version to give.
    assert (signature_version, signature_date) == (None, None)


def test_version_with_official_signatures_gives_their_version_and_build_time():
    engine, version, built = parse_version("ClamAV 1.4.6/27480/Tue Dec  1 09:30:00 2026\n")
    assert (engine, version) == ("1.4.6", 27480)
    local = datetime(2026, 12, 1, 9, 30).astimezone()
    assert built == local and built.tzinfo is timezone.utc
    assert parse_version("ClamAV 1.4.6/27480/not a date") == ("1.4.6", 27480, None)


def test_clean_data_and_a_clean_message_are_clean(clamd):
    client = clamd.client()
    assert client.scan_sync(b"Just a plain note, nothing to see.\r\n") is None
    assert client.scan_sync(message_with(b"%PDF-1.4 harmless", "a.pdf").as_bytes()) is None
    assert client.scan_sync(b"") is None


def test_eicar_as_plain_bytes_is_found(clamd):
    assert found(clamd.client().scan_sync(eicar_bytes()), EICAR_NAME)


def test_eicar_inside_a_zip_is_found(clamd):
    archive = zipped("readme.com", eicar_bytes())
    assert eicar_bytes() not in archive
    assert found(clamd.client().scan_sync(archive), EICAR_NAME)


def test_eicar_base64_in_a_nested_mime_message_is_found(clamd):
    message = nested_message(eicar_bytes())
    assert base64.b64encode(eicar_bytes()) in message.replace(b"\n", b"")
    assert eicar_bytes() not in message
    assert found(clamd.client().scan_sync(message), EICAR_NAME)


def test_a_message_streamed_in_many_small_chunks_is_scanned_as_one(clamd):
    message = message_with(CLAM_EXE.read_bytes(), "clam.exe").as_bytes()
    pieces = [message[i:i + 100] for i in range(0, len(message), 100)]
    assert len(pieces) > 5
    assert found(clamd.client().scan_sync(iter(pieces)), CLAM_EXE_NAME)


def test_concurrent_scans_each_get_their_own_verdict(clamd):
    client = clamd.client()

    async def both():
        return await asyncio.gather(*(client.scan(data) for data in
                                      [eicar_bytes(), b"clean", zipped("x.com", eicar_bytes()),
                                       b"also clean"] * 3))

    verdicts = asyncio.run(both())
    assert [v is not None for v in verdicts] == [True, False, True, False] * 3


def test_a_stream_over_clamds_limit_raises_scan_too_large(tmp_path):
    with ClamdProcess(tmp_path / "small", stream_max_length="64K") as small:
        client = small.client()
        assert client.scan_sync(b"a" * 60_000) is None
        with pytest.raises(ScanTooLarge) as too_large:
            client.scan_sync(b"a" * 100_000)
        assert "size limit" in str(too_large.value)
        # In chunks, the limit hits part-way through the stream.
        with pytest.raises(ScanTooLarge):
            client.scan_sync(iter([b"b" * 20_000] * 10))
        # One refused stream leaves clamd serving the next.
        assert found(client.scan_sync(eicar_bytes()), EICAR_NAME)


def test_scan_too_large_is_a_scanner_failure_for_callers_that_only_care_about_that():
    assert issubclass(ScanTooLarge, ScannerUnavailable)


def test_a_stopped_clamd_is_unavailable(tmp_path):
    process = ClamdProcess(tmp_path / "stopping").start()
    client = process.client(timeout=5)
    assert found(client.scan_sync(eicar_bytes()), EICAR_NAME)
    process.stop()
    try:
        assert client.ping_sync() is False
        with pytest.raises(ScannerUnavailable) as down:
            client.scan_sync(eicar_bytes())
        assert not isinstance(down.value, ScanTooLarge)
        with pytest.raises(ScannerUnavailable):
            client.version_sync()
    finally:
        process.remove()


def test_shutdown_ends_clamd(tmp_path):
    process = ClamdProcess(tmp_path / "shutdown").start()
    try:
        process.client().shutdown_sync()
        assert process.process.wait(30) == 0
        assert process.client().ping_sync() is False
    finally:
        process.remove()


def test_a_socket_nobody_listens_on_is_unavailable(tmp_path):
    path = tmp_path / "dead.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.close()  # the file stays, nothing accepts: connection refused
    with pytest.raises(ScannerUnavailable, match="not running"):
        Clamd(path).scan_sync(b"data")
    with pytest.raises(ScannerUnavailable, match="not running"):
        Clamd(tmp_path / "absent.sock").scan_sync(b"data")


def test_a_clamd_that_never_answers_times_out(tmp_path):
    # A hung clamd (e.g. stuck loading signatures) accepts and says nothing.
    path = tmp_path / "hung.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)
    held, done = [], threading.Event()

    def accept():
        while not done.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        client = Clamd(path, timeout=0.5)
        with pytest.raises(ScannerUnavailable, match="within"):
            client.scan_sync(b"data")
        assert client.ping_sync() is False
    finally:
        done.set()
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        for connection in held:
            connection.close()
        thread.join(5)


def test_reload_picks_up_a_signature_file_added_afterwards(clamd):
    client = clamd.client()
    sample = b"gatebox reload sample: harmless bytes a new signature will name\n" * 4
    assert client.scan_sync(sample) is None
    extra_signature(clamd.database_dir, sample, "Gatebox.Test.Reloaded", "gatebox-extra.hdb")
    client.reload_sync()
    # clamd answers RELOADING at once and loads in the background; scans wait
    # meanwhile. Well before clamd's default IdleTimeout (30 s) would let it.
    wait_until(lambda: found(client.scan_sync(sample), "Gatebox.Test.Reloaded"),
               timeout=20, what="the reloaded signature to match")
    assert found(client.scan_sync(eicar_bytes()), EICAR_NAME)


# ---- the SoftPak's own clamd -------------------------------------------------

def test_the_service_runs_clamd_as_a_child_with_its_files_under_the_data_dir(tmp_path):
    data_dir = tmp_path / "data"
    tiny_database(paths.db_dir(data_dir))

    async def life():
        service = ClamdService(data_dir)
        await service.start()
        try:
            pid = service.pid
            assert await service.client().ping()
            assert found(await service.client().scan(eicar_bytes()), EICAR_NAME)
            status = Path(f"/proc/{pid}/status").read_text()
            assert re.search(rf"^PPid:\s+{os.getpid()}$", status, re.MULTILINE)
            assert Path(f"/proc/{pid}/oom_score_adj").read_text().strip() == "1000"
            assert service.resident_bytes() > 0
            return pid, service.socket_path
        finally:
            await service.stop()

    pid, socket_path = asyncio.run(life())
    conf = paths.clamd_conf(data_dir).read_text()
    assert paths.clamd_conf(data_dir).parent == data_dir.resolve() / "antivirus"
    assert f"DatabaseDirectory {paths.db_dir(data_dir)}\n" in conf
    assert f"LocalSocket {socket_path}\n" in conf
    for line in ("Foreground yes", "ConcurrentDatabaseReload no", "MaxThreads 2", "IdleTimeout 3",
                 f"StreamMaxLength {clamd_service.STREAM_MAX_MB}M", "LogSyslog no",
                 f"LogFile {paths.clamd_log(data_dir)}"):
        assert f"\n{line}\n" in conf
    assert not re.search(r"^(TCPSocket|TCPAddr|User)\b", conf, re.MULTILINE)
    assert paths.clamd_log(data_dir).read_text().strip()
    # Stopped: the process is gone and clamd took its socket away.
    assert not Path(f"/proc/{pid}").exists()
    assert not socket_path.exists()
    assert Clamd(socket_path).ping_sync() is False


def test_a_clamd_that_dies_is_started_again(tmp_path, monkeypatch):
    monkeypatch.setattr(clamd_service, "RESTART_SECONDS", (0.2,))
    data_dir = tmp_path / "data"
    tiny_database(paths.db_dir(data_dir))

    async def life():
        service = ClamdService(data_dir)
        await service.start()
        try:
            first = service.pid
            os.kill(first, signal.SIGKILL)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while loop.time() < deadline:
                if service.pid not in (None, first) and await service.client().ping():
                    break
                await asyncio.sleep(0.1)
            assert service.pid != first
            assert found(await service.client().scan(eicar_bytes()), EICAR_NAME)
        finally:
            await service.stop()
        assert service.pid is None

    asyncio.run(life())


def test_a_clamd_that_cannot_load_its_signatures_fails_to_start_and_says_why(tmp_path):
    data_dir = tmp_path / "data"
    paths.db_dir(data_dir).mkdir(parents=True)
    (paths.db_dir(data_dir) / "broken.hdb").write_text("this is not a hash signature\n")

    async def start():
        service = ClamdService(data_dir, start_seconds=60)
        with pytest.raises(RuntimeError, match="did not answer") as failed:
            await service.start()
        assert service.process is None
        return str(failed.value)

    reason = asyncio.run(start())
    assert "broken.hdb" in reason, reason


def test_socket_path_stays_short_enough_for_a_unix_socket(tmp_path):
    short = Path("/data")
    assert paths.socket_path(short) == Path("/data/antivirus/clamd.sock")
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    fallback = paths.socket_path(deep)
    assert len(str(fallback).encode()) < paths.SOCKET_PATH_LIMIT
    assert fallback.name == "clamd.sock"
    assert fallback != paths.socket_path(tmp_path / ("d" * 60) / ("f" * 60))
    assert fallback == paths.socket_path(deep)


# ---- which clamd `gatebox run` wants -------------------------------------------

@pytest.fixture
def store(tmp_path):
    store = Store.create(tmp_path / "data")
    yield store
    store.close()


def test_no_service_while_scanning_is_off_or_without_signatures(store):
    options = {"data_dir": store.data_dir}
    assert clamd_service.service(store, options) is None
    store.set(ENABLED, True)
    assert clamd_service.service(store, options) is None
    tiny_database(paths.db_dir(store.data_dir))
    wanted = clamd_service.service(store, options)
    assert isinstance(wanted, ClamdService)
    assert wanted.name == f"clamd {paths.socket_path(store.data_dir)}"


def test_no_service_when_the_signatures_would_not_fit_in_memory(store):
    store.set(ENABLED, True)
    tiny_database(paths.db_dir(store.data_dir))
    # A sparse file: on disk it takes nothing, but its size says "huge database".
    with open(paths.db_dir(store.data_dir) / "main.cvd", "wb") as huge:
        huge.truncate(memory.total_memory() // 2)
    assert clamd_service.service(store, {"data_dir": store.data_dir}) is None


def test_an_external_clamd_gets_its_configuration_and_flag_and_is_shut_down(store, tmp_path):
    store.set(ENABLED, True)
    tiny_database(paths.db_dir(store.data_dir))
    wanted = clamd_service.service(store, {"data_dir": store.data_dir, "clamd": "external"})
    assert isinstance(wanted, ExternalClamdService)
    asyncio.run(wanted.start())
    assert paths.external_flag(store.data_dir).exists()
    assert "ConcurrentDatabaseReload no" in paths.clamd_conf(store.data_dir).read_text()
    assert Clamd(wanted.socket_path).ping_sync() is False  # nothing of ours started
    # What the image's unit does on the flag: a clamd on the configured socket.
    system = ClamdProcess(tmp_path / "system", database_dir=paths.db_dir(store.data_dir),
                          socket_path=wanted.socket_path).start()
    try:
        asyncio.run(wanted.stop())
        assert not paths.external_flag(store.data_dir).exists()
        assert system.process.wait(30) == 0
    finally:
        system.remove()
    asyncio.run(wanted.stop())  # again, with clamd gone: no error
