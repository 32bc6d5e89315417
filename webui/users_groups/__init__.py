"""Users & Groups menu: Users (product accounts). The Mail Server SoftPak
brings the rest of the menu itself, Groups included (softpaks/mailserver/web)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from firmware import accounts, plugins

from .. import accounts_forms, context

blueprint = Blueprint("users_groups", __name__, url_prefix="/users-groups")


@blueprint.route("/users", methods=["GET", "POST"])
def users():
    add = accounts_forms.AddAccountForm(prefix="add")
    if request.method == "POST" and accounts_forms.add_account(add):
        return redirect(url_for(".users"))
    return render_template("accounts.html", accounts=accounts.list_users(context.store()), add=add,
                           action=accounts_forms.AccountActionForm(), admins_only=False,
                           locked=accounts_forms.locked_accounts(), columns=_softpak_columns(),
                           this_page=".users"), 400 if request.method == "POST" else 200


def _softpak_columns() -> list[dict]:
    """What licensed SoftPaks add per user (e.g. the Mail Server's ISP login)."""
    store = context.store()
    return [column for batch in plugins.active_plugin_manager(store).hook.gatebox_users_page_columns(
        store=store) for column in batch or ()]


@blueprint.route("/users/password", methods=["POST"])
def user_password():
    accounts_forms.change_password(accounts_forms.AccountActionForm())
    return redirect(request.form.get("back") == "admins" and url_for("system.administrators")
                    or url_for(".users"))


@blueprint.route("/users/delete", methods=["POST"])
def user_delete():
    accounts_forms.delete_account(accounts_forms.AccountActionForm())
    return redirect(request.form.get("back") == "admins" and url_for("system.administrators")
                    or url_for(".users"))


@blueprint.route("/users/unlock", methods=["POST"])
def user_unlock():
    """Lift the lockout the login limiter put on an account (System >
    Audit Log says when and why)."""
    form = accounts_forms.AccountActionForm()
    if form.validate_on_submit():
        name = form.name.data
        if accounts_forms.unlock_account(name):
            flash(f"Unlocked {name}.", "ok")
        else:
            flash(f"{name} was not locked.", "warning")
    return redirect(request.form.get("back") == "admins" and url_for("system.administrators")
                    or url_for(".users"))
