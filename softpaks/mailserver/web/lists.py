"""Users & Groups > Distribution Lists: one address delivering to local users
and remote addresses. The edit page works without script: Add > and
< Remove send the form back with the recipients so far (kept in hidden
fields) and nothing is saved until Apply."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, SelectMultipleField, StringField

from .. import directory
from .blueprint import blueprint
from .common import (OTHER, ActionForm, actor, chosen_target, domains, list_action, parsed, refuse,
                     render, store, user_choices)


class ListForm(FlaskForm):
    name = StringField("Name")
    domain = SelectField("Domain", validate_choice=False)
    recipient = SelectField("Recipients", validate_choice=False)
    address = StringField("Email Address")
    selected = SelectMultipleField("Recipients on the list", validate_choice=False)
    original = HiddenField()   # the list being modified; empty when adding


@blueprint.route("/lists")
def lists():
    rows = [(name, (f"{name}@{domains()[0]}", ", ".join(members)))
            for name, members in directory.lists(store()).items()]
    return render("mailserver/lists.html", rows=rows, form=ActionForm())


@blueprint.route("/lists/action", methods=["POST"])
def lists_action():
    return list_action(".lists", ".lists_edit",
                       lambda name: directory.delete_list(store(), name, actor=actor()),
                       "distribution list")


@blueprint.route("/lists/edit", methods=["GET", "POST"])
def lists_edit():
    original = request.args.get("name", "")
    if request.method == "POST":
        members = request.form.getlist("member")
    else:
        members = directory.list_members(store(), original) if original else []
        if members is None:
            flash(f"distribution list '{original}': no such list", "error")
            return redirect(url_for(".lists"))
    form = ListForm(name=original, original=original, recipient=OTHER)
    form.domain.choices = [(d, f"@{d}") for d in domains()]
    form.recipient.choices = user_choices(other=True)
    status = 200
    if form.validate_on_submit():
        operation = request.form.get("operation")
        if operation == "add_member":
            members = _add_member(form, members)
        elif operation == "remove_member":
            members = _remove_members(form, members)
        elif _save(form, members):
            return redirect(url_for(".lists"))
        status = 400 if _has_errors(form) else 200
    form.selected.choices = [(m, m) for m in members]
    return render("mailserver/list_edit.html", status, form=form, members=members)


def _add_member(form, members: list) -> list:
    member = chosen_target(form.recipient, form.address, "Recipients")
    if member is None:
        return members
    form.address.data = ""
    return members if member in members else members + [member]


def _remove_members(form, members: list) -> list:
    chosen = set(form.selected.data or ())
    if not chosen:
        refuse(form.selected, "Recipients: select the recipients to remove first")
    return [m for m in members if m not in chosen]


def _save(form, members: list) -> bool:
    name = parsed(form.name, lambda text: directory.local_name(text, "Name"))
    if not members:
        refuse(form.selected, "Recipients: add at least one recipient (Add >)")
    if name is None or not members:
        return False
    try:
        directory.save_list(store(), name, members, actor=actor(),
                            replacing=form.original.data or None)
    except directory.DirectoryError as error:
        refuse(form.name, str(error))
        return False
    flash(f"Distribution list {name}@{form.domain.data}: {', '.join(members)}.", "ok")
    return True


def _has_errors(form) -> bool:
    return any(field.errors for field in form)
