"""Anti-Spam > Bayes: the settings, what the filter has learnt (spam, ham,
tokens) and whether it votes yet, a message file to learn as spam or as not
spam, and Reset (after a confirmation page). Learning and reset go through
the same functions as `gatebox antispam learn` and `bayes reset`."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import RadioField

from webui.settings_page import settings_view

from ..bayes import check, learn
from ..bayes import store as bayes_store
from ..bayes.learn import MAX_MESSAGE
from ..bayes.settings import MENU, MIN_HAM, MIN_SPAM
from .blueprint import blueprint
from .common import EXPIRED_FORM, ButtonForm, actor, store

PAGES = [("bayes", "Bayes", "a Bayesian filter that learns from the spam and ham it is shown, "
                            "from the Junk folder and from quarantine releases; its counts, "
                            "learning a message by hand, and Reset")]

INTRO = ("The Bayesian filter learns which words and word pairs mark spam and which mark your "
         "office's mail. It scores only after it has learnt enough of both. Users teach it by "
         "moving mail into their Junk folder (spam) or out of it (not spam); releasing a "
         "message from the quarantine teaches it too.")


class LearnForm(FlaskForm):
    message = FileField("Message file (.eml)", validators=[FileRequired("choose a message file")])
    kind = RadioField("Learn as", choices=[("spam", "Spam"), ("ham", "Not spam")], default="spam")


def _status():
    box = store()
    totals = bayes_store.for_data(box.data_dir).totals()
    missing = check.readiness(totals, box.get(MIN_SPAM), box.get(MIN_HAM))
    return totals, missing


@blueprint.route("/bayes", methods=["GET", "POST"], endpoint="bayes")
def bayes_page(learn_form: LearnForm | None = None):
    totals, missing = _status()
    return settings_view(MENU, intro=INTRO, template="antispam/bayes.html", totals=totals,
                         missing=missing, learn_form=learn_form or LearnForm(formdata=None),
                         reset_form=ButtonForm())


@blueprint.route("/bayes/learn", methods=["POST"])
def bayes_learn():
    form = LearnForm()
    if not form.validate():
        if form.csrf_token.errors:
            flash(EXPIRED_FORM, "error")
            return redirect(url_for(".bayes"))
        page, _ = bayes_page(form)
        return page, 400
    data = form.message.data.read(MAX_MESSAGE + 1)
    if len(data) > MAX_MESSAGE:
        flash(f"That file is larger than {MAX_MESSAGE // (1024 * 1024)} MB: not a message.", "error")
        return redirect(url_for(".bayes"))
    try:
        said = learn(store(), data, form.kind.data == "spam", "page")
    except ValueError as error:
        flash(f"Not learnt: {error}.", "error")
    else:
        store().audit(actor(), f"bayes: a message file {said}")
        flash(f"The message was {said}.", "ok")
    return redirect(url_for(".bayes"))


@blueprint.route("/bayes/reset", methods=["GET", "POST"])
def bayes_reset():
    form = ButtonForm()
    if form.validate_on_submit():
        bayes_store.for_data(store().data_dir).reset()
        store().audit(actor(), "bayes: reset, everything learnt forgotten")
        flash("The Bayes database is empty: the filter stops scoring until it has learnt "
              "enough again.", "ok")
        return redirect(url_for(".bayes"))
    totals, _ = _status()
    return render_template("antispam/bayes_reset.html", form=form, totals=totals)
