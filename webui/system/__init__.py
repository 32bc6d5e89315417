"""System menu: SoftPaks & Licenses, Administrators, Network, Firmware and
the Audit Log."""

from __future__ import annotations

import datetime

from flask import flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import HiddenField
from wtforms.validators import DataRequired

from firmware import accounts
from firmware.config import schema
from firmware.licensing import LicenseError, remove, stored_licenses

from .. import accounts_forms, context, licenses as license_actions
from ..settings_page import settings_view
from . import firmware_pages  # noqa: F401  (System > Firmware routes on this blueprint)
from .blueprint import blueprint


AUDIT_LIMIT = 500


class RemoveLicenseForm(FlaskForm):
    key_id = HiddenField(validators=[DataRequired()])


@blueprint.route("/licenses", methods=["GET", "POST"])
def licenses():
    store = context.store()
    form = license_actions.LicenseForm()
    if request.method == "POST":
        license_actions.activate_from_form(store, form, context.actor())
        return redirect(url_for(".licenses"))
    return render_template("licenses.html", form=form, remove_form=RemoveLicenseForm(),
                           serial=license_actions.serial_or_problem(),
                           softpaks=license_actions.status_rows(store),
                           stored=stored_licenses(store), when=_when)


@blueprint.route("/licenses/remove", methods=["POST"])
def license_remove():
    form = RemoveLicenseForm()
    if form.validate_on_submit():
        try:
            remove(context.store(), form.key_id.data, actor=context.actor())
            flash(f"Removed license {form.key_id.data}. Settings, mailboxes and queued mail stay.", "ok")
        except LicenseError as error:
            flash(str(error), "error")
    return redirect(url_for(".licenses"))


@blueprint.route("/administrators", methods=["GET", "POST"])
def administrators():
    add = accounts_forms.AddAccountForm(prefix="add")
    del add.admin  # everyone added here is an administrator
    if request.method == "POST" and accounts_forms.add_account(add, force_admin=True):
        return redirect(url_for(".administrators"))
    admins = [u for u in accounts.list_users(context.store()) if u["is_admin"]]
    return render_template("accounts.html", accounts=admins, add=add,
                           action=accounts_forms.AccountActionForm(), admins_only=True,
                           locked=accounts_forms.locked_accounts(),
                           this_page=".administrators"), 400 if request.method == "POST" else 200


@blueprint.route("/network", methods=["GET", "POST"])
def network():
    return settings_view(schema.SYSTEM_MENU)


@blueprint.route("/audit")
def audit():
    rows = context.store().audit_log(AUDIT_LIMIT)
    return render_template("audit.html", rows=rows, when=_when, limit=AUDIT_LIMIT)


def _when(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")
