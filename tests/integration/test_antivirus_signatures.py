"""Signature files and updates with the real ClamAV tools: sigtool checks
and builds, Debian's clamd loads, freshclam talks to a mirror on loopback.

ClamAV's signed .cvd/.cld/.cdiff files cannot be made offline (only ClamAV
signs them), so the versioned database here is an unsigned container
(`sigtool --build --unsigned`, a .cud), which clamd loads the same way; a
forged .cvd must be refused by ClamAV's signature check. For the same
reason freshclam is never given a database to download: the mirror on
loopback refuses (429) or has nothing (404), which is what the cool-down and
the failure handling are about."""

from __future__ import annotations

import asyncio
import datetime
import http.server
import os
import subprocess
import threading
from pathlib import Path

import pytest

from firmware.config import Store
from firmware.licensing import activate
from firmware.system.usb import offers
from softpaks.antivirus import paths, signatures, updates
from softpaks.antivirus.settings import MIRROR, MIRROR_URL, OFFLINE, ONLINE, UPDATE_SOURCE
from tests.support.box import gatebox
from tests.support.clamd import CLAM_EXE, ClamdProcess, eicar_bytes, hdb_line
from tests.support.net import wait_until
from tests.support.tools import require
from tests.unit.test_webui_support import csrf_token, make_app, sign_in

UTC = datetime.timezone.utc


def build_cud(work: Path, version: int, samples: dict[str, Path], name: str = "daily") -> Path:
    """An unsigned daily database (.cud) holding MD5 signatures of `samples`
    ({signature name: file}), version `version`, built by sigtool."""
    require("sigtool")
    work.mkdir(parents=True, exist_ok=True)
    (work / "COPYING").write_text("test signatures\n")
    (work / f"{name}.hdb").write_text("".join(hdb_line(path, signame) + "\n"
                                              for signame, path in samples.items()))
    subprocess.run(["sigtool", f"--datadir={work}", f"--build={name}.cud", "--unsigned",
                    f"--cvd-version={version}", "--no-cdiff"], cwd=work, input="gatebox-test\n",
                   capture_output=True, text=True, check=True, timeout=120)
    built = work / f"{name}.cud"
    assert built.exists(), "sigtool built no database"
    return built


@pytest.fixture
def data(store):
    return Path(store.data_dir)


@pytest.fixture
def eicar_file(tmp_path):
    path = tmp_path / "samples" / "eicar.com"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(eicar_bytes())
    return path


def test_imported_signatures_reach_a_running_clamd_and_the_status(data, tmp_path):
    first = build_cud(tmp_path / "build-1", 27500, {"Gatebox.Test.ClamExe": CLAM_EXE})
    assert [i.version for i in signatures.import_files(data, [first])] == [27500]
    # The helper adds its tiny .hdb (EICAR, clam.exe) to the signature directory.
    clamd = ClamdProcess(tmp_path / "clamd", database_dir=paths.db_dir(data),
                         socket_path=paths.socket_path(data)).start()
    try:
        before = signatures.status(data)
        assert before.state == "running" and before.engine
        assert before.signature_version == 27500 and before.signature_date is not None
        sample_bytes = b"the office's own nuisance " + os.urandom(16).hex().encode()
        sample = tmp_path / "samples" / "nuisance.bin"
        sample.parent.mkdir(parents=True, exist_ok=True)
        sample.write_bytes(sample_bytes)
        assert clamd.client().scan_sync(sample_bytes) is None   # not in the database yet

        local = tmp_path / "office.hdb"
        local.write_text("# the office's own\n" + hdb_line(sample, "Office.Nuisance") + "\n")
        imported = signatures.import_files(data, [local])
        assert [(i.name, i.kind, i.signatures) for i in imported] == [("office.hdb", "local", 1)]
        # The import asked clamd to reload; it finds the sample once it has.
        wait_until(lambda: clamd.client().scan_sync(sample_bytes) is not None, timeout=60,
                   interval=0.5, what="clamd reloading the imported .hdb")

        newer = build_cud(tmp_path / "build-2", 27501, {"Gatebox.Test.ClamExe": CLAM_EXE,
                                                       "Gatebox.Test.Nuisance": sample})
        signatures.import_files(data, [newer])
        after = signatures.status(data)
        assert after.signature_version == 27501
        assert {"daily.cud", "office.hdb"} <= {f.name for f in after.files}
        assert clamd.client().scan_sync(eicar_bytes()) is not None
    finally:
        clamd.remove()


def test_hostile_or_broken_files_are_refused_and_change_nothing(data, tmp_path, eicar_file):
    good = build_cud(tmp_path / "build", 27500, {"Gatebox.Test.ClamExe": CLAM_EXE})
    signatures.import_files(data, [good], reload=False)
    db_dir = paths.db_dir(data)
    installed = {p.name: p.read_bytes() for p in db_dir.iterdir()}

    bad = tmp_path / "bad"
    bad.mkdir()
    wrong_magic = bad / "daily.cvd"
    wrong_magic.write_bytes(b"MZ" + os.urandom(2048))
    forged = bad / "main.cvd"   # a real header with a made-up digital signature
    forged.write_bytes(good.read_bytes().replace(b":X:gatebox-test:", b":AAAA:gatebox-test:", 1))
    older = build_cud(tmp_path / "build-old", 27400, {"Gatebox.Test.ClamExe": CLAM_EXE})
    odd_name = bad / "daily;touch x.cvd"
    odd_name.write_bytes(good.read_bytes())
    bad_line = bad / "office.hdb"
    bad_line.write_text(hdb_line(eicar_file, "Office.Eicar") + "\nnot a signature line\n")
    huge = bad / "huge.hdb"
    with open(huge, "wb") as handle:   # sparse: refused by size before anything is read
        handle.truncate(signatures.MAX_LOCAL + 1)
    link = bad / "link.hdb"
    link.symlink_to(eicar_file)
    no_base = bad / "main-12.cdiff"
    no_base.write_bytes(b"garbage")
    wrong_base = bad / "daily-27600.cdiff"
    wrong_base.write_bytes(b"garbage")
    unsigned_diff = bad / "daily-27501.cdiff"
    unsigned_diff.write_bytes(b"OPEN daily.hdb\nADD x\nCLOSE\n")
    traversal = bad / "..hdb"
    traversal.write_text(hdb_line(eicar_file, "Office.Eicar") + "\n")

    refusals = {
        wrong_magic: "no ClamAV-VDB header",
        forged: "check of the database failed",
        older: "older than the installed",
        odd_name: "named like daily.cvd",
        bad_line: "line 2 is not a .hdb signature",
        huge: "larger than",
        link: "cannot read it",
        no_base: "import the full main.cvd first",
        wrong_base: "but this box has version 27500",
        unsigned_diff: "refused to apply it",
        traversal: "named with letters",
    }
    for path, reason in refusals.items():
        with pytest.raises(signatures.SignatureError, match=reason):
            signatures.import_files(data, [path], reload=False)
    # One refused file among good ones imports none of them.
    local = tmp_path / "ok.hdb"
    local.write_text(hdb_line(eicar_file, "Office.Eicar") + "\n")
    with pytest.raises(signatures.SignatureError, match="office.hdb"):
        signatures.import_files(data, [local, bad_line], reload=False)

    assert {p.name: p.read_bytes() for p in db_dir.iterdir()} == installed
    assert list((paths.antivirus_dir(data) / "incoming").iterdir()) == []


def test_the_cli_imports_and_shows_the_version(data, tmp_path):
    cud = build_cud(tmp_path / "build", 27777, {"Gatebox.Test.ClamExe": CLAM_EXE})
    imported = gatebox(data, "antivirus", "import", str(cud))
    assert "daily.cud: version 27777" in imported.stdout
    assert "not licensed" in imported.stderr   # kept, but says nothing is scanned yet
    shown = gatebox(data, "antivirus", "status").stdout
    assert "signatures: version 27777" in shown and "engine: ClamAV 1." in shown
    assert "state: not running" in shown
    refused = gatebox(data, "antivirus", "import", str(tmp_path / "build" / "COPYING"), check=False)
    assert refused.returncode == 1 and "not a signature file" in refused.stderr


def test_usb_offer_of_a_signature_file_is_imported_when_confirmed(store, data, tmp_path):
    stick = tmp_path / "stick"
    (stick / "clamav").mkdir(parents=True)
    cud = build_cud(tmp_path / "build", 27900, {"Gatebox.Test.ClamExe": CLAM_EXE})
    (stick / "clamav" / "daily.cud").write_bytes(cud.read_bytes())
    [offer] = offers.scan(stick, "sdb1")
    assert offer.kind == "signatures"
    messages = signatures.apply_usb_offer(store, offer)
    assert "daily.cud: version 27900" in messages[0]
    assert signatures.status(data).signature_version == 27900


def test_a_signature_offer_is_imported_only_after_confirmation_on_the_page(tmp_path, vendor,
                                                                           box_serial):
    data = tmp_path / "web"
    app = make_app(data)
    box = Store(data)
    activate(box, vendor.issue(antivirus=None))
    stick = tmp_path / "stick"
    stick.mkdir()
    build_cud(tmp_path / "build", 28000, {"Gatebox.Test.ClamExe": CLAM_EXE}).rename(stick / "daily.cud")
    offers.record(data, "sdb1", offers.scan(stick, "sdb1"))
    [offer] = offers.all_offers(data)
    client = app.test_client()
    sign_in(client)
    listed = client.get("/system/firmware").get_data(as_text=True)
    assert "daily.cud" in listed and "signature file" in listed
    confirm = client.get(f"/system/firmware/usb/{offer.id}").get_data(as_text=True)
    assert "load them into the virus scanner?" in confirm
    assert signatures.status(data).signature_version is None   # nothing before the confirmation
    token = csrf_token(client, f"/system/firmware/usb/{offer.id}")
    done = client.post(f"/system/firmware/usb/{offer.id}", data={"csrf_token": token},
                       follow_redirects=True).get_data(as_text=True)
    assert "Imported from USB: daily.cud: version 28000" in done
    assert signatures.status(data).signature_version == 28000
    box.close()


# ---- updates -------------------------------------------------------------------
class Mirror:
    """A LAN mirror on loopback answering every request with one status."""

    def __init__(self, status: int, headers: dict | None = None):
        self.requests: list[str] = []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                mirror.requests.append(self.path)
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/clamav"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirror_factory():
    made = []

    def make(status, headers=None):
        made.append(Mirror(status, headers))
        return made[-1]

    yield make
    for mirror in made:
        mirror.stop()


def _use_mirror(store, url):
    store.set_many({UPDATE_SOURCE: MIRROR, MIRROR_URL: url})


def test_a_refusal_by_the_mirror_backs_off_until_the_stated_time(store, data, mirror_factory):
    require("freshclam")
    mirror = mirror_factory(429, {"Retry-After": "7200"})
    _use_mirror(store, mirror.url)
    started = datetime.datetime.now(UTC)
    state = updates.update_now(data, store)
    assert state.result == updates.COOLDOWN and "refused" in state.message
    until = state.cooldown_time()
    assert started + datetime.timedelta(minutes=110) < until < started + datetime.timedelta(minutes=130)
    asked = list(mirror.requests)
    assert asked and all(path.startswith("/clamav/") for path in asked)

    with pytest.raises(updates.UpdateRefused, match="no request until"):
        updates.update_now(data, store)
    assert mirror.requests == asked   # the box did not ask again
    assert updates.next_due(updates.read_state(data), hours=1) >= until
    # Recorded for the page and the CLI, and freshclam's own record agrees.
    assert updates.read_state(data).result == updates.COOLDOWN
    assert abs((updates.cooldown_from_dat(data) - until).total_seconds()) < 120
    shown = gatebox(data, "antivirus", "status").stdout
    assert "updates wait until" in shown


def test_the_lan_mirror_is_asked_and_a_failure_recorded(store, data, mirror_factory):
    require("freshclam")
    mirror = mirror_factory(404)
    _use_mirror(store, mirror.url + "/")
    state = updates.update_now(data, store)
    assert state.result == updates.FAILED and mirror.url.removeprefix("http://") in state.message
    assert "/clamav/daily.cvd" in mirror.requests
    config = updates.config_path(data).read_text()
    assert f"PrivateMirror {mirror.url}\n" in config
    assert f"DatabaseDirectory {paths.db_dir(data)}\n" in config
    assert "/etc/" not in config and "/var/lib" not in config
    # A LAN mirror may be asked again at once; the failure does not start a cool-down.
    assert updates.update_now(data, store).result == updates.FAILED
    assert mirror.requests.count("/clamav/daily.cvd") == 2


def test_online_checks_at_most_hourly_and_offline_never_reaches_out(store, data):
    store.set(UPDATE_SOURCE, ONLINE)
    updates._write_state(data, updates.UpdateState(
        last_run=datetime.datetime.now(UTC).isoformat(timespec="seconds"),
        result=updates.UP_TO_DATE, source=ONLINE))
    with pytest.raises(updates.UpdateRefused, match="one check an hour"):
        updates.update_now(data, store)
    store.set(UPDATE_SOURCE, OFFLINE)
    with pytest.raises(updates.UpdateRefused, match="Offline"):
        updates.update_now(data, store)
    assert not updates.config_path(data).exists()   # freshclam was never prepared, let alone run


def test_a_mirror_url_cannot_smuggle_options_into_freshclam(data):
    for url in ("http://mirror.lan/x\nDatabaseDirectory /etc", "ftp://mirror.lan", "mirror.lan"):
        with pytest.raises(updates.UpdateRefused, match="LAN mirror URL"):
            updates.write_config(data, MIRROR, url)


def test_the_run_loop_updates_when_due_licensed_and_scanning_is_on(store, data, vendor,
                                                                   mirror_factory):
    require("freshclam")
    activate(store, vendor.issue(antivirus=None))
    mirror = mirror_factory(404)
    _use_mirror(store, mirror.url)
    store.set("antivirus.enabled", "on")

    async def run_until_recorded():
        task = asyncio.create_task(updates.keep_updated(store, data, check_seconds=0.1))
        try:
            while not updates.read_state(data).result:
                await asyncio.sleep(0.1)
        finally:
            task.cancel()

    asyncio.run(asyncio.wait_for(run_until_recorded(), timeout=120))
    state = updates.read_state(data)
    assert state.result == updates.FAILED and state.source == MIRROR
    assert "/clamav/daily.cvd" in mirror.requests
    # The next run waits for the schedule (update_hours, here 4).
    assert updates.next_due(state, 4) - state.last_run_time() == datetime.timedelta(hours=4)
