"""What every Users & Groups page of the SoftPak shares: the store, the
names it offers in its drop-down lists, the Relay-mode note, the list page's
Modify / Delete actions and putting a refused value's rule beside its field."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from firmware import accounts
from webui import context

from .. import directory, groups

OTHER = "__other__"   # the "Other" entry of a user drop-down: an address typed beside it


class ActionForm(FlaskForm):
    """The list pages' Modify / Delete buttons: only a CSRF token."""


def store():
    return context.store()


def actor() -> str:
    return context.actor()


def users() -> list[str]:
    return [row["name"] for row in accounts.list_users(store())]


def domains() -> list[str]:
    return directory.local_domains(store().all())


def render(template: str, status: int = 200, **values):
    relay = store().get("email.server_type") == "relay"
    return render_template(template, relay=relay, domains=domains(), **values), status


def parsed(field, parse):
    """parse(field's text), or None with the rule attached to the field."""
    try:
        return parse((field.data or "").strip())
    except directory.DirectoryError as error:
        refuse(field, str(error))
        return None


def refuse(field, message: str):
    field.errors = [message]


def chosen_target(choice_field, address_field, label: str):
    """A user picked from the drop-down, or the address typed for "Other"."""
    if choice_field.data == OTHER:
        if not (address_field.data or "").strip():
            refuse(address_field, f"{label}: type the email address for Other")
            return None
        return parsed(address_field, lambda text: directory.target(text, label))
    return parsed(choice_field, lambda text: directory.target(text, label))


def user_choices(other: bool = False) -> list[tuple[str, str]]:
    """Users a forwarder, auto-responder or list can name: those with Email
    permission (the others' mail does not arrive)."""
    without = set(groups.users_without_email(store()))
    choices = [(name, name) for name in users() if name not in without]
    return choices + [(OTHER, "Other")] if other else choices


def list_action(list_view: str, edit_view: str, delete, what: str):
    """Modify (opens the edit page) or Delete the entry chosen on a list page."""
    if not ActionForm().validate_on_submit():
        abort(400)
    chosen = request.form.get("chosen", "")
    operation = request.form.get("operation")
    if operation not in ("modify", "delete"):
        abort(400)
    if not chosen:
        flash(f"Select {what} first.", "error")
    elif operation == "modify":
        return redirect(url_for(edit_view, name=chosen))
    else:
        try:
            delete(chosen)
            flash(f"Deleted {what} {chosen}.", "ok")
        except directory.DirectoryError as error:
            flash(str(error), "error")
    return redirect(url_for(list_view))
