"""Users & Groups > Groups: named groups of users and the permissions they
give. Email is the one permission: members may have a mailbox (see
groups.py for all it decides). Members are ticked from the users list."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectMultipleField, StringField
from wtforms.widgets import CheckboxInput, ListWidget

from .. import directory
from ..groups import (delete_group, group, groups as all_groups,
    save_group, users_without_email)
from .blueprint import blueprint
from .common import ActionForm, actor, list_action, parsed, refuse, render, store, users


class GroupForm(FlaskForm):
    name = StringField("Group Name")
    email = BooleanField("Email")
    new_users = BooleanField("New users join this group")
    members = SelectMultipleField("Members", validate_choice=False,
                                  widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
    original = HiddenField()   # the group being modified; empty when adding


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


@blueprint.route("/groups")
def groups():
    rows = [(g.name, (g.name, _yes(g.email), _yes(g.new_users), ", ".join(g.members) or "(none)"))
            for g in all_groups(store())]
    return render("mailserver/groups.html", rows=rows, form=ActionForm(),
                  without_email=users_without_email(store()))


@blueprint.route("/groups/action", methods=["POST"])
def groups_action():
    return list_action(".groups", ".groups_edit",
                       lambda name: delete_group(store(), name, actor=actor()), "group")


@blueprint.route("/groups/edit", methods=["GET", "POST"])
def groups_edit():
    original = request.args.get("name", "")
    existing = group(store(), original) if original else None
    if original and existing is None:
        flash(f"group '{original}': no such group", "error")
        return redirect(url_for(".groups"))
    initial = ({"name": existing.name, "email": existing.email, "new_users": existing.new_users,
                "members": list(existing.members), "original": existing.name} if existing
               else {"email": True})
    form = GroupForm(**initial)
    form.members.choices = [(name, name) for name in users()]
    if form.validate_on_submit() and _save(form):
        return redirect(url_for(".groups"))
    return render("mailserver/group_edit.html", 400 if request.method == "POST" else 200, form=form)


def _save(form) -> bool:
    name = parsed(form.name, lambda text: directory.local_name(text, "Group Name"))
    if name is None:
        return False
    try:
        save_group(store(), name, email=form.email.data, new_users=form.new_users.data,
                          members=form.members.data or [], actor=actor(),
                          replacing=form.original.data or None, what="Group Name",
                          members_what="Members")
    except directory.DirectoryError as error:
        refuse(form.members if str(error).startswith("Members") else form.name, str(error))
        return False
    flash(f"Group {name}: Email {'given' if form.email.data else 'not given'}; "
          f"members: {', '.join(form.members.data or []) or 'none'}.", "ok")
    return True
