"""Users & Groups > Aliases: NAME@<local domain> delivered to another address.
An alias answers at every local domain; the domain list shows which."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField

from .. import directory
from .blueprint import blueprint
from .common import ActionForm, actor, domains, list_action, parsed, refuse, render, store


class AliasForm(FlaskForm):
    name = StringField("Email Addressed To")
    domain = SelectField("Domain", validate_choice=False)
    target = StringField("Should Be Delivered To")
    original = HiddenField()   # the alias being modified; empty when adding


@blueprint.route("/aliases")
def aliases():
    domain = domains()[0]
    rows = [(name, (f"{name}@{domain}", target)) for name, target in directory.aliases(store()).items()]
    return render("mailserver/aliases.html", rows=rows, form=ActionForm())


@blueprint.route("/aliases/action", methods=["POST"])
def aliases_action():
    return list_action(".aliases", ".aliases_edit",
                       lambda name: directory.delete_alias(store(), name, actor=actor()), "alias")


@blueprint.route("/aliases/edit", methods=["GET", "POST"])
def aliases_edit():
    existing = directory.aliases(store())
    original = request.args.get("name", "")
    if original and original not in existing:
        flash(f"alias '{original}': no such alias", "error")
        return redirect(url_for(".aliases"))
    form = AliasForm(name=original, target=existing.get(original, ""), original=original)
    form.domain.choices = [(d, f"@{d}") for d in domains()]
    if form.validate_on_submit():
        if _save(form):
            return redirect(url_for(".aliases"))
    return render("mailserver/alias_edit.html", 400 if request.method == "POST" else 200, form=form)


def _save(form) -> bool:
    name = parsed(form.name, lambda text: directory.local_name(text, "Email Addressed To"))
    target = parsed(form.target, lambda text: directory.target(text, "Should Be Delivered To"))
    if form.domain.data not in domains():
        refuse(form.domain, "Domain: choose one of the local domains")
        return False
    if name is None or target is None:
        return False
    try:
        directory.add_alias(store(), name, target, actor=actor(), replacing=form.original.data or None)
    except directory.DirectoryError as error:
        refuse(form.name, str(error))
        return False
    flash(f"Alias {name}@{form.domain.data} delivers to {target}.", "ok")
    return True
