"""Forms and actions for product accounts, shared by Users & Groups > Users
and System > Administrators."""

from __future__ import annotations

from flask import current_app, flash
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo

from firmware import accounts

from . import context


class AddAccountForm(FlaskForm):
    name = StringField("Login Name", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()],
                             render_kw={"autocomplete": "new-password"})
    confirm = PasswordField("Confirm Password", validators=[
        DataRequired(), EqualTo("password", message="must match the password")],
        render_kw={"autocomplete": "new-password"})
    admin = BooleanField("Administrator (may sign in to this admin interface)")


class AccountActionForm(FlaskForm):
    name = HiddenField(validators=[DataRequired()])
    password = PasswordField("New Password", render_kw={"autocomplete": "new-password"})


def add_account(form: AddAccountForm, force_admin: bool = False) -> bool:
    """True when the account was added; otherwise the rule is on the field."""
    if not form.validate_on_submit():
        return False
    try:
        accounts.add_user(context.store(), form.name.data, form.password.data,
                          admin=force_admin or form.admin.data, actor=context.actor())
    except accounts.AccountError as error:
        text = str(error)
        target = form.password if text.startswith("password") else form.name
        target.errors = [text.split(": ", 1)[-1]]
        return False
    flash(f"Added {form.name.data.strip().lower()}.", "ok")
    return True


def change_password(form: AccountActionForm) -> bool:
    if not form.validate_on_submit():
        flash("Give the account and a new password.", "error")
        return False
    try:
        accounts.set_password(context.store(), form.name.data, form.password.data or "",
                              actor=context.actor())
    except accounts.AccountError as error:
        flash(str(error), "error")
        return False
    flash(f"Password of {form.name.data} changed.", "ok")
    return True


def delete_account(form: AccountActionForm) -> bool:
    store = context.store()
    if not form.validate_on_submit():
        return False
    name = form.name.data
    admins = [u["name"] for u in accounts.list_users(store) if u["is_admin"]]
    if name == context.admin_name():
        flash("You cannot delete the account you are signed in with.", "error")
        return False
    if admins == [name]:
        flash("The last administrator cannot be deleted.", "error")
        return False
    try:
        accounts.delete_user(store, name, actor=context.actor())
    except accounts.AccountError as error:
        flash(str(error), "error")
        return False
    flash(f"Deleted {name}.", "ok")
    return True


def locked_accounts() -> dict:
    """Account name -> the login limiter's lockout of it."""
    return current_app.extensions["login_limiter"].locked_accounts(context.store())


def unlock_account(name: str) -> bool:
    return current_app.extensions["login_limiter"].unlock_account(context.store(), name,
                                                                  context.actor())
