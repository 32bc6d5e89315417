"""Anti-Spam > Rules: the built-in rules (GTUBE, Default with its strict-MIME
checks, Heuristic) with their scores, and the administrator's Custom rules,
added and removed through the same functions as `gatebox antispam rules`; a
refused rule comes back with its reason beside the field."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField

from ..content_filter import STRICT_MIME_WARNING
from ..rules import custom
from ..rules.gtube import GTUBE
from ..rules.heuristic import HEURISTIC_RULES
from ..rules.mime_rules import DEFAULT_RULES, STRICT_MIME_RULES
from .blueprint import blueprint
from .common import EXPIRED_FORM, ButtonForm, actor, store

PAGES = [("rules", "Rules",
          "the Default rules (with the strict-MIME checks), the Heuristic rules with their "
          "scores, the GTUBE test, and your own Custom header and body rules")]

# (title, what the set is, its rules), in the page's order.
SETS = (
    ("GTUBE", "Always scored while the Message Filter is active, to test the Filter Match "
              "Action end to end: send a message holding the GTUBE test string.", (GTUBE,)),
    ("Default: built-in rules", "Scored when the Filter Type includes Default.", DEFAULT_RULES),
    ("Default: strict MIME", "Scored when the Filter Type includes Default. " +
     STRICT_MIME_WARNING, STRICT_MIME_RULES),
    ("Heuristic", "Scored when the Heuristic filter is selected. It does not require strict "
                  "MIME.", HEURISTIC_RULES),
)


class AddForm(FlaskForm):
    target = SelectField("Look in", choices=custom.TARGETS)
    header = StringField("Header name")
    kind = SelectField("Match", choices=custom.KINDS)
    pattern = StringField("Pattern")
    action = StringField("Score")
    description = StringField("Description")


def _page(form: AddForm | None = None, status: int = 200):
    if form is None:
        form = AddForm(formdata=None, action="5")
    return render_template("antispam/rules.html", sets=SETS, rules=custom.rules(store()),
                           form=form, remove_form=ButtonForm(), spam_score=custom.SPAM_SCORE,
                           max_score=custom.MAX_SCORE), status


@blueprint.route("/rules", endpoint="rules")
def rules_page():
    return _page()


@blueprint.route("/rules/add", methods=["POST"])
def rules_add():
    form = AddForm()
    if not form.validate():
        if form.csrf_token.errors:
            abort(400)
        return _page(form, 400)
    try:
        made = custom.add(store(), form.target.data, form.header.data, form.kind.data,
                          form.pattern.data, form.action.data, form.description.data,
                          actor=actor())
    except custom.CustomRuleError as error:
        getattr(form, error.field if error.field in form else "pattern").errors = [str(error)]
        return _page(form, 400)
    flash(f"Added {made.symbol}: {made.summary()}, {made.action}.", "ok")
    return redirect(url_for(".rules"))


@blueprint.route("/rules/remove", methods=["POST"])
def rules_remove():
    if not ButtonForm().validate():
        flash(EXPIRED_FORM, "error")
        return redirect(url_for(".rules"))
    rule_id = request.form.get("id", "")
    if not rule_id:
        abort(400)
    try:
        gone = custom.remove(store(), rule_id, actor=actor())
    except custom.CustomRuleError as error:
        flash(str(error), "error")
    else:
        flash(f"Removed {gone.symbol}: {gone.summary()}.", "ok")
    return redirect(url_for(".rules"))
