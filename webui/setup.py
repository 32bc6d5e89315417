"""First boot: while no administrator exists, this is the only page. It asks
for the one-time setup code the box prints on its console (`gatebox
setup-code` makes a new one), the administrator's password, the Domain Name
and the time zone, shows the serial number and offers license activation."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo

from firmware import accounts
from firmware.config import declarations
from firmware.system import setup_code

from . import context, licenses, settings_form
from .auth import admin_exists, sign_in

blueprint = Blueprint("setup", __name__)

ADMIN_NAME = "admin"
# Asked at first boot, each declared once in firmware.config like any setting.
SETUP_SETTINGS = ("email.domain", "system.timezone")


class SetupBase(FlaskForm):
    setup_code = StringField("Setup Code", validators=[DataRequired()],
                             render_kw={"autocomplete": "off", "spellcheck": "false"})
    password = PasswordField("Administrator Password", validators=[DataRequired()],
                             render_kw={"autocomplete": "new-password"})
    confirm = PasswordField("Confirm Password", validators=[
        DataRequired(), EqualTo("password", message="must match the password")],
        render_kw={"autocomplete": "new-password"})


class SetupLicenseForm(licenses.LicenseForm):
    """Activation before an administrator exists changes the box too: it
    needs the same one-time code as the rest of setup."""
    setup_code = StringField("Setup Code", render_kw={"autocomplete": "off", "spellcheck": "false"})


def _setup_settings() -> list:
    declared = declarations()
    return [declared[key] for key in SETUP_SETTINGS if key in declared]


@blueprint.route("/setup", methods=["GET", "POST"])
def setup():
    store = context.store()
    if admin_exists(store):
        return redirect(url_for("dashboard.index"))
    posted = request.method == "POST"
    form, infos = settings_form.build_for(_setup_settings(), store,
                                          request.form if posted else None, base=SetupBase)
    if posted and form.validate():
        try:
            accounts.validate_password(form.password.data)
        except accounts.AccountError as error:
            form.password.errors = [str(error).removeprefix("password: ")]
        if not setup_code.matches(store, form.setup_code.data):
            form.setup_code.errors = ["does not match the code on the box's console; "
                                      "`gatebox setup-code` on the box prints a new one"]
        if not form.password.errors and not form.setup_code.errors:
            if settings_form.apply(form, infos, store, "setup (web)") is not None:
                try:
                    accounts.add_user(store, ADMIN_NAME, form.password.data, admin=True,
                                      actor="setup (web)")
                except accounts.AccountError as error:
                    # Someone else finished setup a moment ago.
                    flash(str(error), "error")
                    return redirect(url_for("auth.login"))
                setup_code.discard(store)
                sign_in(store, ADMIN_NAME)
                flash("Setup complete. You are signed in as 'admin'.", "ok")
                return redirect(url_for("dashboard.index"))
    return render_template("setup.html", form=form, infos=infos, admin_name=ADMIN_NAME,
                           serial=licenses.serial_or_problem(),
                           license_form=SetupLicenseForm(formdata=None),
                           softpaks=licenses.status_rows(store)), 400 if posted else 200


@blueprint.route("/setup/license", methods=["POST"])
def license():
    store = context.store()
    if admin_exists(store):
        return redirect(url_for("system.licenses"))
    form = SetupLicenseForm()
    if not setup_code.matches(store, form.setup_code.data or ""):
        flash("License not activated: the Setup Code does not match the code on the box's "
              "console; `gatebox setup-code` on the box prints a new one.", "error")
        return redirect(url_for("setup.setup"))
    licenses.activate_from_form(store, form, "setup (web)")
    return redirect(url_for("setup.setup"))
