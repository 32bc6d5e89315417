"""License activation shared by first-boot setup and System > SoftPaks &
Licenses: a pasted key, an uploaded key file, or an activation code
exchanged online at the vendor's license service."""

from __future__ import annotations

from flask import flash
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import StringField, TextAreaField

from firmware.licensing import NOT_INSTALLED, LicenseError, NoSerial, activate, box_serial, expiry
from firmware.licensing.online import request_key
from firmware.plugins.status import softpak_status

MAX_KEY_FILE = 64 * 1024


class LicenseForm(FlaskForm):
    key = TextAreaField("License Key", render_kw={"rows": 5, "spellcheck": "false"})
    key_file = FileField("or Key File")
    code = StringField("or Activation Code", render_kw={"autocomplete": "off"})


def serial_or_problem() -> str:
    try:
        return box_serial()
    except NoSerial as error:
        return f"unknown ({error})"


def status_rows(store) -> list:
    return softpak_status(store)


def activate_from_form(store, form: LicenseForm, actor: str) -> bool:
    """Activate what the form holds; flashes the outcome. True on success."""
    if not form.validate_on_submit():
        flash("The form expired; please try again.", "error")
        return False
    sources = [bool((form.key.data or "").strip()), bool(form.key_file.data),
               bool((form.code.data or "").strip())]
    if sum(sources) != 1:
        flash("Give exactly one of: a license key, a key file, or an activation code.", "error")
        return False
    try:
        if form.code.data and form.code.data.strip():
            text = request_key(form.code.data.strip(), serial_or_problem())
        elif form.key_file.data:
            text = form.key_file.data.read(MAX_KEY_FILE + 1)
            if len(text) > MAX_KEY_FILE:
                raise LicenseError("the key file is too large to be a license key")
            text = text.decode("utf-8", errors="replace")
        else:
            text = form.key.data
        result = activate(store, text, actor=actor)
    except LicenseError as error:
        flash(f"License not activated: {error}", "error")
        return False
    lic = result.license
    granted = ", ".join(
        f"{softpak} ({expiry.describe(end)}"
        f"{f', {NOT_INSTALLED}' if softpak in result.not_installed else ''})"
        for softpak, end in sorted(lic.grants.items()))
    verb = "Activated" if result.new else "Already active:"
    flash(f"{verb} license {lic.id}: {granted}.", "ok")
    return True
