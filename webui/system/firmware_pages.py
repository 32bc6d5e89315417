"""System > Firmware: the slots, uploading and installing a signed update
bundle, rollback, reboot, and what an inserted USB stick offers.

A bundle is streamed to DATA/firmware/upload (the box's /tmp is a small
tmpfs) and checked there; a refused one is deleted at once. Installing runs
in a background thread that reports through DATA/firmware/install.json, which
the page polls."""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path

from flask import current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from werkzeug.utils import secure_filename
from wtforms import HiddenField

from firmware import plugins
from firmware.licensing import LicenseError, activate
from firmware.system.update import (Runtime, UpdateError, check_bundle, install, request_reboot,
                                    rollback, status)
from firmware.system.update import progress
from firmware.system.usb import offers as usb_offers

from .. import context
from ..security import csrf
from .blueprint import blueprint

# A root slot is 512 MiB; a bundle holding it cannot be larger.
MAX_BUNDLE = 600 * 1024 * 1024
CHECKED = "checked.json"
RUNTIME_CONFIG = "GATEBOX_UPDATE_RUNTIME"


class ActionForm(FlaskForm):
    """Every button on the page: only the CSRF token, plus what it acts on."""
    source = HiddenField()


def runtime() -> Runtime:
    # Tests give the app a runtime of their own; the box uses its real paths.
    return current_app.config.get(RUNTIME_CONFIG) or Runtime.from_environment(
        current_app.config["GATEBOX_DATA"])


@blueprint.route("/firmware")
def firmware():
    rt = runtime()
    return render_template("firmware.html", status=status(rt), progress=progress.read(rt),
                           checked=_checked_upload(rt), offers=usb_offers.all_offers(rt.data),
                           form=ActionForm(), max_bundle=MAX_BUNDLE)


@blueprint.route("/firmware/progress")
def firmware_progress():
    rt = runtime()
    return jsonify({**progress.read(rt), "status": status(rt).as_dict()})


@blueprint.route("/firmware/upload", methods=["POST"])
@csrf.exempt  # checked below, once the upload is parsed into the data partition
def firmware_upload():
    rt = runtime()
    wants_json = request.mimetype != "multipart/form-data"
    request.max_content_length = MAX_BUNDLE
    _clear_uploads(rt)
    rt.upload_dir.mkdir(parents=True, exist_ok=True)
    try:
        received, name = (_receive_raw(rt) if wants_json else _receive_form(rt))
    except UpdateError as error:
        return _answer(wants_json, str(error), ok=False)
    try:
        info = check_bundle(rt, received)
    except UpdateError as error:
        received.unlink(missing_ok=True)
        return _answer(wants_json, f"Bundle refused: {error}", ok=False)
    kept = rt.upload_dir / name
    received.rename(kept)
    (rt.upload_dir / CHECKED).write_text(json.dumps(
        {"name": name, "version": info.version, "compatible": info.compatible, "signer": info.signer}))
    return _answer(wants_json, f"Bundle {name} checked: version {info.version} for "
                               f"{info.compatible}, signed by {info.signer or 'a trusted key'}. "
                               "Install it below.", ok=True, version=info.version)


@blueprint.route("/firmware/install", methods=["POST"])
def firmware_install():
    form = ActionForm()
    rt = runtime()
    checked = _checked_upload(rt)
    if not form.validate_on_submit():
        flash("The form expired; please try again.", "error")
    elif checked is None:
        flash("Upload a bundle first.", "error")
    elif progress.read(rt).get("state") == "installing":
        flash("An installation is already running.", "error")
    else:
        _install_in_background(rt, rt.upload_dir / checked["name"], remove_after=True)
        flash(f"Installing version {checked['version']} into the inactive slot.", "ok")
    return redirect(url_for(".firmware"))


@blueprint.route("/firmware/rollback", methods=["POST"])
def firmware_rollback():
    if ActionForm().validate_on_submit():
        try:
            flash(rollback(runtime()), "ok")
        except UpdateError as error:
            flash(f"Rollback refused: {error}", "error")
    return redirect(url_for(".firmware"))


@blueprint.route("/firmware/reboot", methods=["POST"])
def firmware_reboot():
    if ActionForm().validate_on_submit():
        request_reboot(runtime())
        context.store().audit(context.actor(), "reboot requested")
        flash("The box is rebooting; this page answers again in a few minutes.", "ok")
    return redirect(url_for(".firmware"))


@blueprint.route("/firmware/usb/<offer_id>", methods=["GET", "POST"])
def firmware_usb_offer(offer_id):
    """GET asks for confirmation; POST (from that page) applies the offer."""
    rt = runtime()
    offer = usb_offers.find(rt.data, offer_id)
    if offer is None:
        flash("That USB stick or file is no longer there.", "error")
        return redirect(url_for(".firmware"))
    form = ActionForm()
    if request.method == "GET" or not form.validate_on_submit():
        return render_template("firmware_usb_confirm.html", offer=offer, form=form)
    if offer.kind == "license":
        try:
            result = activate(context.store(), usb_offers.read_license_text(offer),
                              actor=context.actor())
            flash(f"License {result.license.id} from USB activated.", "ok")
        except (LicenseError, OSError) as error:
            flash(f"License not activated: {error}", "error")
    elif offer.kind in usb_offers.SOFTPAK_KINDS:
        _apply_softpak_offer(offer)
    else:
        try:
            info = check_bundle(rt, offer.path)
            _install_in_background(rt, Path(offer.path), remove_after=False)
            flash(f"Installing version {info.version} from USB into the inactive slot.", "ok")
        except (UpdateError, OSError) as error:
            flash(f"Bundle refused: {error}", "error")
    return redirect(url_for(".firmware"))


# ---- helpers -----------------------------------------------------------------
def _apply_softpak_offer(offer) -> None:
    store = context.store()
    try:
        done = [message for batch in plugins.active_plugin_manager(store).hook
                .gatebox_usb_offer_apply(store=store, offer=offer) for message in batch]
    except (ValueError, OSError) as error:
        flash(f"{offer.name} not applied: {error}", "error")
        return
    if done:
        store.audit(context.actor(), f"usb offer applied: {offer.name}")
        flash("; ".join(done), "ok")
    else:
        flash(f"{offer.name}: no licensed SoftPak on this box takes it.", "error")


def _receive_raw(rt: Runtime) -> tuple[Path, str]:
    """The page's script sends the file as the request body, with the CSRF
    token in X-CSRFToken and the file name in X-Filename."""
    csrf.protect()
    name = _bundle_name(request.headers.get("X-Filename", ""))
    with tempfile.NamedTemporaryFile(dir=rt.upload_dir, suffix=".part", delete=False) as out:
        while chunk := request.stream.read(1024 * 1024):
            out.write(chunk)
    return Path(out.name), name


def _receive_form(rt: Runtime) -> tuple[Path, str]:
    """A plain form post (no script): the file part goes straight to the data
    partition instead of the default temporary file in /tmp."""
    def to_data_partition(total_content_length, content_type, filename=None, content_length=None):
        return tempfile.NamedTemporaryFile(dir=rt.upload_dir, suffix=".part", delete=False)

    request._get_current_object()._get_file_stream = to_data_partition
    try:
        csrf.protect()  # parses the form
    except CSRFError:
        _clear_uploads(rt)  # a forged post leaves nothing behind
        raise
    upload = request.files.get("bundle")
    if upload is None or not upload.filename:
        raise UpdateError("Choose a bundle file (.raucb) to upload.")
    upload.stream.flush()
    return Path(upload.stream.name), _bundle_name(upload.filename)


def _bundle_name(filename: str) -> str:
    name = secure_filename(filename) or "bundle.raucb"
    return name if name.endswith(".raucb") else name + ".raucb"


def _clear_uploads(rt: Runtime) -> None:
    # One bundle at a time: the data partition has no room for a collection.
    if rt.upload_dir.is_dir() and progress.read(rt).get("state") != "installing":
        for leftover in rt.upload_dir.iterdir():
            leftover.unlink(missing_ok=True)


def _checked_upload(rt: Runtime) -> dict | None:
    try:
        checked = json.loads((rt.upload_dir / CHECKED).read_text())
    except (OSError, ValueError):
        return None
    return checked if (rt.upload_dir / checked.get("name", "")).is_file() else None


def _install_in_background(rt: Runtime, path: Path, *, remove_after: bool) -> None:
    def work():
        try:
            install(rt, path)
        except UpdateError as error:
            progress.report(rt, "failed", 100, str(error))
        except Exception as error:  # the page must never wait on a dead thread
            progress.report(rt, "failed", 100, f"Installation stopped: {error}")
        finally:
            if remove_after:
                _clear_uploads(rt)

    progress.report(rt, "installing", 0, "Checking the bundle")
    threading.Thread(target=work, name="firmware-install", daemon=True).start()


def _answer(wants_json: bool, message: str, *, ok: bool, **extra):
    # Flashed either way: the script reloads the page to show the outcome.
    flash(message, "ok" if ok else "error")
    if wants_json:
        return jsonify({"ok": ok, "message": message, **extra}), 200 if ok else 400
    return redirect(url_for(".firmware"))
