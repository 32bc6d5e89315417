"""Anti-Virus > Settings: the scanner's settings, clamd's state, and the
memory figures (what the box has, what the loaded signatures need).
Turning the scanner on is refused, with the figures, when the box has not
the memory for the signatures: clamd would not start, or the OOM killer
would have to choose between it and the mail stack."""

from __future__ import annotations

from flask import flash, redirect, render_template, request

from webui import settings_form
from webui.context import actor, store

from .. import memory, paths, status
from ..settings import ENABLED, SETTINGS_MENU
from .blueprint import blueprint

INTRO = ("Each message sent or received is scanned at the end of DATA, before the box answers "
         "250, so nothing infected is ever accepted. The scanner is ClamAV's daemon (clamd), "
         "run by the box with its signatures under the data directory.")


def memory_refusal(form, box) -> str:
    """The reason turning scanning on is refused now, or ""."""
    turning_on = bool(getattr(form, settings_form.field_name(ENABLED)).data)
    if not turning_on or box.get(ENABLED):
        return ""
    ok, message = memory.check(paths.db_dir(box.data_dir))
    return "" if ok else message


@blueprint.route("/settings", methods=["GET", "POST"])
def settings():
    box = store()
    posted = request.method == "POST"
    form, infos = settings_form.build(SETTINGS_MENU, box, request.form if posted else None)
    if posted and form.validate():
        refusal = memory_refusal(form, box)
        if refusal:
            getattr(form, settings_form.field_name(ENABLED)).errors = [refusal]
        else:
            changes = settings_form.apply(form, infos, box, actor())
            if changes is not None:
                labels = {info.key: info.setting.label for info in infos}
                flash(f"Saved: {', '.join(labels.get(c.key, c.key) for c in changes)}."
                      if changes else "Nothing changed.", "ok")
                for change in changes:
                    if change.warning:
                        flash(change.warning, "warning")
                return redirect(request.path)
    return render_template("antivirus/settings.html", form=form, infos=infos, intro=INTRO,
                           has_errors=posted, unlicensed=[], scanner=status.scanner_state(box),
                           figures=status.memory_figures(box)), \
        400 if posted else 200
