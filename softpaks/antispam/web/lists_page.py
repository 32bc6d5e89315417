"""Anti-Spam > Lists: the black and whitelists of the whole server, of one
local domain and of one user, each level on a tab of its own. Adding and
removing go through the same functions as `gatebox antispam list`; a
refused entry comes back with its rule beside the field."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField

from .. import lists
from .blueprint import blueprint
from .common import EXPIRED_FORM, ButtonForm, actor, domains, store, users

LEVELS = (("server", "Server"), ("domain", "Domain"), ("user", "User"))
COLORS = (("black", "Blacklist"), ("white", "Whitelist"))


class AddForm(FlaskForm):
    level = HiddenField()
    scope = StringField("Domain")
    color = SelectField("List", choices=COLORS)
    entry = StringField("Entry")


def _level(text: str) -> str:
    return text if text in dict(LEVELS) else "server"


def _scope_label(level: str) -> str:
    return "User (email address)" if level == "user" else "Domain"


def _scope_keywords(level: str, scope: str) -> dict:
    """lists.add / lists.remove name the level by the keyword given."""
    if level == "domain":
        return {"domain": scope}
    if level == "user":
        return {"user": scope}
    return {}


def _page(level: str, form: AddForm | None = None, status: int = 200):
    if form is None:
        form = AddForm(formdata=None, level=level, scope=request.args.get("scope", ""))
    form.scope.label.text = _scope_label(level)
    rows = lists.entries(store(), level=level)
    return render_template("antispam/lists.html", level=level, levels=LEVELS,
                       colors=dict(COLORS), rows=rows, form=form, remove_form=ButtonForm(),
                       domains=domains(), users=users()), status


@blueprint.route("/lists", endpoint="lists")
def lists_page():
    return _page(_level(request.args.get("level", "server")))


@blueprint.route("/lists/add", methods=["POST"])
def lists_add():
    form = AddForm()
    level = _level(form.level.data or "")
    if not form.validate():
        if form.csrf_token.errors:
            abort(400)
        return _page(level, form, 400)
    entry = (form.entry.data or "").strip()
    scope = (form.scope.data or "").strip().lower()
    if level != "server" and not scope:
        form.scope.errors = [f"{_scope_label(level)}: say which one the entry is for"]
        return _page(level, form, 400)
    try:
        lists.add(store(), form.color.data, entry, actor=actor(), **_scope_keywords(level, scope))
    except ValueError as error:
        form.entry.errors = [str(error)]
        return _page(level, form, 400)
    where = f" of {scope}" if level != "server" else ""
    flash(f"Added {entry} to the {dict(COLORS)[form.color.data].lower()}{where}.", "ok")
    return redirect(url_for(".lists", level=level, scope=scope or None))


@blueprint.route("/lists/remove", methods=["POST"])
def lists_remove():
    if not ButtonForm().validate():
        flash(EXPIRED_FORM, "error")
        return redirect(url_for(".lists"))
    level = _level(request.form.get("level", ""))
    scope = request.form.get("scope", "")
    color = request.form.get("color", "")
    entry = request.form.get("entry", "")
    if color not in dict(COLORS) or not entry:
        abort(400)
    try:
        lists.remove(store(), color, entry, actor=actor(), **_scope_keywords(level, scope))
    except ValueError as error:
        flash(str(error), "error")
    else:
        where = f" of {scope}" if level != "server" else ""
        flash(f"Removed {entry} from the {dict(COLORS)[color].lower()}{where}.", "ok")
    return redirect(url_for(".lists", level=level))
