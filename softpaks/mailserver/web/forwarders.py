"""Users & Groups > Forwarders: a user's mail sent on to one other address
(a user, or any address through "Other"), optionally saving a local copy."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField

from .. import directory
from .blueprint import blueprint
from .common import (OTHER, ActionForm, actor, chosen_target, domains, list_action, refuse, render,
                     store, user_choices, users)


class ForwarderForm(FlaskForm):
    user = SelectField("Email addressed to", validate_choice=False)
    target_user = SelectField("Should be forwarded to", validate_choice=False)
    address = StringField("Email Address")
    keep_copy = BooleanField("Save a local copy")
    original = HiddenField()   # the user whose forwarder is being modified


@blueprint.route("/forwarders")
def forwarders():
    domain = domains()[0]
    rows = [(f.name, (f"{f.name}@{domain}", f.target, "yes" if f.keep_copy else "no"))
            for f in directory.forwarders(store())]
    return render("mailserver/forwarders.html", rows=rows, form=ActionForm())


@blueprint.route("/forwarders/action", methods=["POST"])
def forwarders_action():
    return list_action(".forwarders", ".forwarders_edit",
                       lambda name: directory.delete_forwarder(store(), name, actor=actor()),
                       "forwarder")


@blueprint.route("/forwarders/edit", methods=["GET", "POST"])
def forwarders_edit():
    original = request.args.get("name", "")
    existing = directory.forwarder(store(), original) if original else None
    if original and existing is None:
        flash(f"forwarder '{original}': user {original} has no forwarder", "error")
        return redirect(url_for(".forwarders"))
    form = ForwarderForm(**_initial(existing))
    form.user.choices = user_choices()
    form.target_user.choices = user_choices(other=True)
    if form.validate_on_submit() and _save(form):
        return redirect(url_for(".forwarders"))
    return render("mailserver/forwarder_edit.html", 400 if request.method == "POST" else 200,
                  form=form, has_users=bool(users()))


def _initial(existing) -> dict:
    if existing is None:
        return {"target_user": OTHER}
    local = "@" not in existing.target and existing.target in users()
    return {"user": existing.name, "original": existing.name, "keep_copy": existing.keep_copy,
            "target_user": existing.target if local else OTHER,
            "address": "" if local else existing.target}


def _save(form) -> bool:
    target = chosen_target(form.target_user, form.address, "Should be forwarded to")
    if not form.user.data:
        refuse(form.user, "Email addressed to: choose a user (add users under Users & Groups: Users)")
    if target is None or not form.user.data:
        return False
    try:
        directory.set_forwarder(store(), form.user.data, target, form.keep_copy.data, actor=actor(),
                                replacing=form.original.data or None)
    except directory.DirectoryError as error:
        refuse(form.user, str(error))
        return False
    copy = ", keeping a local copy" if form.keep_copy.data else ""
    flash(f"Mail for {form.user.data} is forwarded to {target}{copy}.", "ok")
    return True
