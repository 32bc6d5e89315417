"""Anti-Virus > Signatures: the signature version and date and the engine
version, a warning when the signatures are older than 3 days, the update
settings, Update Now, and the import of signature files by upload.

An upload is streamed to the data partition (the box's /tmp is a small
tmpfs, and main.cvd alone is about 160 MB), checked and installed by the
same function as `gatebox antivirus import`, and removed whatever the
outcome."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from pathlib import Path

from flask import flash, redirect, request, url_for
from werkzeug.utils import secure_filename

from firmware.config import Store
from firmware.system import durable
from webui.security import csrf
from webui.settings_page import settings_view
from webui.button_form import EXPIRED_FORM, ButtonForm
from webui.context import actor, store

from .. import paths, signatures, status, updates
from ..settings import SIGNATURES_MENU
from .blueprint import blueprint

INTRO = ("The scanner recognises only what its signatures describe: new viruses appear every "
         "day, so the signatures must stay current. The box fetches them on the schedule below, "
         "from ClamAV's mirrors or a mirror on the LAN; a box that cannot reach the Internet "
         "imports signature files (as cvdupdate produces them) here or from a USB stick.")
# One upload: a whole signature bundle (main, daily, bytecode) with room for growth.
MAX_UPLOAD = signatures.MAX_CONTAINER + 64 * 1024 * 1024
ACCEPTED = (".cvd", ".cld", ".cud", ".cdiff", ".hdb", ".ndb")
# How long the page waits for Update Now before saying it goes on in the background.
UPDATE_WAIT_SECONDS = 20


def upload_root(data_dir) -> Path:
    return paths.antivirus_dir(data_dir) / "upload"


@blueprint.route("/signatures", methods=["GET", "POST"], endpoint="signatures")
def signatures_page():
    box = store()
    found = signatures.status(box.data_dir)
    return settings_view(SIGNATURES_MENU, intro=INTRO, template="antivirus/signatures.html",
                         found=found, stale=status.signatures_stale(found.signature_date),
                         age=(status.age_text(found.signature_date)
                              if found.signature_date else ""),
                         update=updates.read_state(box.data_dir), accepted=ACCEPTED,
                         max_upload_mb=MAX_UPLOAD // (1024 * 1024), button_form=ButtonForm())


@blueprint.route("/signatures/update", methods=["POST"])
def signatures_update():
    if not ButtonForm().validate():
        flash(EXPIRED_FORM, "error")
        return redirect(url_for(".signatures"))
    box = store()
    data_dir = box.data_dir
    outcome = {}

    def work():
        # freshclam may take minutes; the page waits a while, then the run goes
        # on alone, with a store of its own (SQLite connections stay in their thread).
        own = Store(data_dir)
        try:
            outcome["state"] = updates.update_now(data_dir, own)
        except updates.UpdateRefused as refused:
            outcome["refused"] = str(refused)
        except Exception as error:  # noqa: BLE001  (reported on the page, never lost)
            outcome["refused"] = f"the update failed: {error}"
        finally:
            own.close()

    worker = threading.Thread(target=work, name="antivirus-update", daemon=True)
    worker.start()
    worker.join(UPDATE_WAIT_SECONDS)
    box.audit(actor(), "update virus signatures now")
    if "refused" in outcome:
        flash(f"Not updated: {outcome['refused']}.", "error")
    elif "state" in outcome:
        state = outcome["state"]
        flash(f"Signature update: {state.result}: {state.message}",
              "ok" if state.result in (updates.UPDATED, updates.UP_TO_DATE) else "warning")
    else:
        flash("The update is still running; reload this page to see its outcome.", "ok")
    return redirect(url_for(".signatures"))


@blueprint.route("/signatures/import", methods=["POST"])
@csrf.exempt  # checked below, once the upload is parsed onto the data partition
def signatures_import():
    box = store()
    request.max_content_length = MAX_UPLOAD
    root = durable.make_directories(upload_root(box.data_dir), 0o700)
    batch = root / secrets.token_hex(6)
    batch.mkdir(mode=0o700)
    try:
        try:
            received = _receive(batch)
        except ValueError as error:
            flash(str(error), "error")
            return redirect(url_for(".signatures"))
        try:
            imported = signatures.import_files(box.data_dir, received)
        except signatures.SignatureError as error:
            flash(f"Nothing was imported: {error}.", "error")
            return redirect(url_for(".signatures"))
        box.audit(actor(), "import virus signatures", "",
                  ", ".join(item.describe() for item in imported)[:300])
        flash("Imported: " + "; ".join(item.describe() for item in imported) + ".", "ok")
        return redirect(url_for(".signatures"))
    finally:
        shutil.rmtree(batch, ignore_errors=True)


def _receive(batch: Path) -> list[Path]:
    """The uploaded files, each under its own (sanitised) name in a directory
    of its own in `batch`: the name says what kind of file it is."""
    def to_data_partition(total_content_length, content_type, filename=None,
                          content_length=None):
        return tempfile.NamedTemporaryFile(dir=batch, suffix=".part", delete=False)

    request._get_current_object()._get_file_stream = to_data_partition
    csrf.protect()  # parses the form; a forged post is refused before anything is read
    uploads = [u for u in request.files.getlist("files") if u and u.filename]
    if not uploads:
        raise ValueError("Choose one or more signature files (" + ", ".join(ACCEPTED) + ").")
    received = []
    for number, upload in enumerate(uploads):
        name = secure_filename(upload.filename) or "unnamed"
        if not name.lower().endswith(ACCEPTED):
            raise ValueError(f"{name}: not a signature file ({', '.join(ACCEPTED)}).")
        folder = batch / str(number)
        folder.mkdir()
        target = folder / name
        upload.stream.flush()
        Path(upload.stream.name).rename(target)
        upload.stream.close()
        received.append(target)
    return received
