"""Users & Groups menu: Users (product accounts), Groups, and the Mail Server
SoftPak's pages (User Mailboxes, Aliases, Auto-Responders, Distribution Lists,
Forwarders)."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for

from firmware import accounts
from firmware.plugins import installed_softpaks

from .. import accounts_forms, context
from ..menu import MAIL_SERVER_PAGES

blueprint = Blueprint("users_groups", __name__, url_prefix="/users-groups")


@blueprint.route("/users", methods=["GET", "POST"])
def users():
    add = accounts_forms.AddAccountForm(prefix="add")
    if request.method == "POST" and accounts_forms.add_account(add):
        return redirect(url_for(".users"))
    return render_template("accounts.html", accounts=accounts.list_users(context.store()), add=add,
                           action=accounts_forms.AccountActionForm(), admins_only=False,
                           this_page=".users"), 400 if request.method == "POST" else 200


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


@blueprint.route("/groups")
def groups():
    return render_template("not_yet.html",
                           what="Groups of users, and permissions given to a group, are not in this "
                                "firmware yet. Accounts are managed under Users.")


@blueprint.route("/mail/<slug>")
def mail_server_page(slug: str):
    pages = {s: (label, purpose) for s, label, purpose in MAIL_SERVER_PAGES}
    if slug not in pages:
        abort(404)
    label, purpose = pages[slug]
    store = context.store()
    manifest = installed_softpaks().get("mailserver")
    return render_template("softpak_page.html", label=label, purpose=purpose, manifest=manifest,
                           licensed="mailserver" in store.active_softpaks(),
                           relay=store.get("email.server_type") == "relay")
