"""Users & Groups > Auto-Responders: a reply sent automatically to mail for a
local user (once per sender per the days setting; never to lists or bulk
mail, see autoresponder.py). The days setting has its own settings page."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField, TextAreaField

from webui.settings_page import settings_view

from .. import directory, settings as keys
from .blueprint import blueprint
from .common import ActionForm, actor, domains, list_action, refuse, render, store, user_choices, users


class ResponderForm(FlaskForm):
    user = SelectField("Email Address", validate_choice=False)
    subject = StringField("Subject")
    message = TextAreaField("Responder Message", render_kw={"rows": 8})
    original = HiddenField()   # the user whose auto-responder is being modified


@blueprint.route("/auto-responders")
def responders():
    domain = domains()[0]
    rows = [(r.name, (f"{r.name}@{domain}", r.subject or "Auto: <subject>", r.message))
            for r in directory.responders(store())]
    return render("mailserver/responders.html", rows=rows, form=ActionForm(),
                  days=store().get(keys.RESPONDER_DAYS))


@blueprint.route("/auto-responders/action", methods=["POST"])
def responders_action():
    return list_action(".responders", ".responders_edit",
                       lambda name: directory.clear_responder(store(), name, actor=actor()),
                       "auto-responder")


@blueprint.route("/auto-responders/settings", methods=["GET", "POST"])
def responders_settings():
    return settings_view(keys.RESPONDERS_MENU)


@blueprint.route("/auto-responders/edit", methods=["GET", "POST"])
def responders_edit():
    original = request.args.get("name", "")
    existing = directory.responder(store(), original) if original else None
    if original and existing is None:
        flash(f"auto-responder '{original}': user {original} has no auto-responder", "error")
        return redirect(url_for(".responders"))
    initial = ({"user": existing.name, "subject": existing.subject, "message": existing.message,
                "original": existing.name} if existing else {})
    form = ResponderForm(**initial)
    form.user.choices = user_choices()
    if form.validate_on_submit() and _save(form):
        return redirect(url_for(".responders"))
    return render("mailserver/responder_edit.html", 400 if request.method == "POST" else 200,
                  form=form, has_users=bool(users()))


def _save(form) -> bool:
    if not form.user.data:
        refuse(form.user, "Email Address: choose a user (add users under Users & Groups: Users)")
        return False
    try:
        directory.set_responder(store(), form.user.data, form.message.data or "",
                                (form.subject.data or "").strip(), actor=actor(),
                                replacing=form.original.data or None)
    except directory.DirectoryError as error:
        refuse(_field_of(form, str(error)), str(error).replace("responder ", "Responder ", 1))
        return False
    flash(f"Auto-responder of {form.user.data} set.", "ok")
    return True


def _field_of(form, message: str):
    # directory names the value it refused at the start of its message.
    if message.startswith("responder message"):
        return form.message
    if message.startswith("responder subject"):
        return form.subject
    return form.user
