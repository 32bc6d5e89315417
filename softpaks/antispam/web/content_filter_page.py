"""Anti-Spam > Content Filter: the Filters tab of ISMail EP's Content
Filter, for All Domains (the server), one local domain or one user, each
level on a tab of its own as the lists are. Saving and clearing go through
the same functions as `gatebox antispam filter`; a refused field comes back
with its rule beside it."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, RadioField, StringField

from .. import content_filter
from ..content_filter import ACTIONS, LEVELS, STRICT_MIME_WARNING, THRESHOLDS, FilterError
from ..lists import DOMAIN, SERVER, USER
from .blueprint import blueprint
from .common import EXPIRED_FORM, ButtonForm, actor, domains, store, users

PAGES = [("content_filter", "Content Filter",
          "whether the content layers filter, the level of filtering and the Filter Match "
          "Action (mark, quarantine or reject) for all domains, one domain or one user")]

SCOPES = ((SERVER, "All Domains"), (DOMAIN, "Domain"), (USER, "User"))

HINTS = {
    "content_filter": "The content layers score inbound mail and the Filter Match Action applies "
                      "to what they find. Off: nothing is scored for these recipients.",
    "default_filter": "The built-in rules.",
    "custom_filter": "Your own header and body rules (Anti-Spam > Rules).",
    "heuristic": "Named rules with scores, in the manner of SpamAssassin's: missing or odd "
                 "Date and Message-ID, a From name holding another address, a shouting "
                 "subject, HTML without text, links to bare IP addresses or naming another "
                 "domain, executable attachments, forged mailer headers, the GTUBE test "
                 "string. It does not need strict MIME.",
    "level": "Sets the two thresholds below: a message is marked from the lower; the Filter "
             "Match Action applies from the higher.",
    "action": "Mark: the message is delivered with X-Spam-Flag, X-Spam-Score and X-Spam-Report. "
              "Quarantine: held in Email Server > Quarantine (its subject kept), where it can "
              "be released. Reject: refused at DATA with 550 5.7.1, so the sending server "
              "tells its sender; this box never sends a bounce. Mail between the two "
              "thresholds is marked whatever the action.",
    "tag_subject": "A marked message's subject starts with [SPAM], for mail client filters.",
}


class FilterForm(FlaskForm):
    kind = HiddenField()
    scope = HiddenField()
    content_filter = BooleanField("Message Filter Active")
    default_filter = BooleanField("Default")
    custom_filter = BooleanField("Custom")
    heuristic = BooleanField("Heuristic filter")
    level = RadioField("Level of filtering", choices=LEVELS)
    action = RadioField("Filter Match Action", choices=ACTIONS)
    tag_subject = BooleanField("Append [SPAM] to subject line")


class ScopeForm(FlaskForm):
    """The chooser: which domain or user (a GET form, so no token)."""
    class Meta:
        csrf = False
    kind = HiddenField()
    scope = StringField("Domain")


def _kind(text: str) -> str:
    return text if text in dict(SCOPES) else SERVER


def _keywords(kind: str, scope: str) -> dict:
    if kind == DOMAIN:
        return {"domain": scope}
    if kind == USER:
        return {"user": scope}
    return {}


def _scope_label(kind: str) -> str:
    return "User (email address)" if kind == USER else "Domain"


def _filled(form: FilterForm, found) -> FilterForm:
    for name, value in found.values().items():
        getattr(form, name).data = value
    return form


def _page(kind: str, scope: str, form: FilterForm | None = None, scope_error: str = "",
          status: int = 200):
    """The page for one scope. `scope` is as typed; a domain or user that
    is not local is said so beside the chooser, and no record is shown."""
    box = store()
    chooser = ScopeForm(formdata=None, kind=kind, scope=scope)
    chooser.scope.label.text = _scope_label(kind)
    found, own, named = None, None, ""
    if kind == SERVER or scope:
        try:
            found_kind, named = content_filter.scope_of(box, **_keywords(kind, scope))
        except FilterError as error:
            scope_error = scope_error or str(error)
        else:
            own = content_filter.record(box, found_kind, named)
            found = own or content_filter.effective(box, found_kind, named)
    if scope_error:
        chooser.scope.errors = [scope_error]
    if form is None and found is not None:
        form = _filled(FilterForm(formdata=None, kind=kind, scope=named), found)
    others = [item for item in content_filter.scoped_records(box) if item[0] == kind]
    return render_template(
        "antispam/content_filter.html", kind=kind, kinds=SCOPES, scope=named or scope,
        chooser=chooser, form=form, found=found, own=own, others=others,
        thresholds=THRESHOLDS, levels=LEVELS, actions=dict(ACTIONS), hints=HINTS,
        strict_mime=STRICT_MIME_WARNING, clear_form=ButtonForm(), domains=domains(),
        users=users(), has_errors=status == 400), status


@blueprint.route("/content-filter", endpoint="content_filter")
def content_filter_page():
    kind = _kind(request.args.get("kind", SERVER))
    return _page(kind, (request.args.get("scope") or "").strip().lower()[:320])


@blueprint.route("/content-filter/save", methods=["POST"])
def content_filter_save():
    form = FilterForm()
    kind = _kind(form.kind.data or "")
    scope = (form.scope.data or "").strip().lower()[:320]
    if not form.validate():
        if form.csrf_token.errors:
            abort(400)
        return _page(kind, scope, form, status=400)
    if kind != SERVER and not scope:
        return _page(kind, scope, form, f"{_scope_label(kind)}: say which one", 400)
    raw = {name: form[name].data for name in content_filter.NAMES}
    try:
        made = content_filter.save(store(), raw, actor=actor(), **_keywords(kind, scope))
    except FilterError as error:
        # Only the scope can be refused here: the fields passed the form's choices.
        return _page(kind, scope, form, str(error), 400)
    flash(f"Saved the Content Filter of {_title(made.scope)}.", "ok")
    return redirect(url_for(".content_filter", kind=kind, scope=scope or None))


@blueprint.route("/content-filter/clear", methods=["POST"])
def content_filter_clear():
    if not ButtonForm().validate():
        flash(EXPIRED_FORM, "error")
        return redirect(url_for(".content_filter"))
    kind = _kind(request.form.get("kind", ""))
    scope = (request.form.get("scope") or "").strip().lower()[:320]
    if kind == SERVER or not scope:
        abort(400)
    try:
        now = content_filter.clear(store(), actor=actor(), **_keywords(kind, scope))
    except FilterError as error:
        flash(str(error), "error")
    else:
        flash(f"Removed the Content Filter of {kind} {scope}: the one of {_title(now.scope)} "
              "applies to it now.", "ok")
    return redirect(url_for(".content_filter", kind=kind, scope=scope))


def _title(scope_name: str) -> str:
    return "All Domains" if scope_name == SERVER else scope_name
