"""The view behind every settings page: show the generated form, and on
Apply validate and save it, or show each refused field's rule beside it with
everything else as the administrator typed it."""

from __future__ import annotations

from flask import flash, redirect, render_template, request

from firmware.plugins import installed_softpaks, setting_softpak

from . import context, settings_form


def settings_view(menu: str, intro: str = "", template: str = "settings.html", apply: bool = True,
                  **extra):
    """apply=False: only show the form (a page whose other forms post elsewhere)."""
    store = context.store()
    posted = apply and request.method == "POST"
    form, infos = settings_form.build(menu, store, request.form if posted else None)
    if posted and form.validate():
        changes = settings_form.apply(form, infos, store, context.actor())
        if changes is not None:
            if changes:
                flash(f"Saved: {', '.join(_label(c.key, infos) for c in changes)}.", "ok")
            else:
                flash("Nothing changed.", "ok")
            for change in changes:
                if change.warning:
                    flash(change.warning, "warning")
            return redirect(request.path)
    status = 400 if posted else 200
    return render_template(template, form=form, infos=infos, intro=intro,
                           has_errors=posted, unlicensed=_unlicensed_softpaks(infos, store),
                           **extra), status


def _unlicensed_softpaks(infos, store) -> list[tuple]:
    """(manifest, [labels]) for each SoftPak that declares fields of this page
    and is not licensed: the values are kept and may be set, but do nothing
    until a license is active."""
    active = store.active_softpaks()
    found = {}
    for info in infos:
        softpak = setting_softpak(info.key)
        if softpak and softpak not in active:
            found.setdefault(softpak, []).append(info.setting.label)
    manifests = installed_softpaks()
    return [(manifests[s], labels) for s, labels in found.items() if s in manifests]


def _label(key: str, infos) -> str:
    for info in infos:
        if info.key == key:
            return info.setting.label
    return key
