"""A user's ISP Login and ISP Password (Mirrored: the box fetches each
user's own ISP mailbox into the user's mailbox). The fields sit on the
Users page, one small form per user that posts here; the password is never
sent back to the browser, and an empty password keeps the stored one."""

from __future__ import annotations

from flask import abort, flash, redirect, url_for
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField

from ..retrieval import isp_accounts
from .blueprint import blueprint
from .common import actor, store

USERS_PAGE = "users_groups.users"


class IspLoginForm(FlaskForm):
    name = HiddenField()
    isp_login = StringField("ISP Login")
    isp_password = PasswordField("ISP Password")
    operation = HiddenField()


@blueprint.route("/isp-login", methods=["POST"])
def isp_login():
    form = IspLoginForm()
    if not form.validate_on_submit():
        abort(400)
    name = (form.name.data or "").strip().lower()
    try:
        if form.operation.data == "clear":
            isp_accounts.clear_isp_login(store(), name, actor=actor())
            flash(f"ISP login of {name} cleared.", "ok")
        else:
            isp_accounts.set_isp_login(store(), name, form.isp_login.data or "",
                                       form.isp_password.data or None, actor=actor())
            flash(f"ISP login of {name} set: {form.isp_login.data.strip()}.", "ok")
    except isp_accounts.AccountInputError as error:
        flash(str(error), "error")
    return redirect(url_for(USERS_PAGE))
