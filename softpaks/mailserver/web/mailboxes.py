"""Users & Groups > User Mailboxes: pick a user, then Details lists the
mailbox (sortable by From, Subject, Size); a message opens in its own window
as text; Delete removes the selected messages, Purge all of them. Other
SoftPaks add buttons for the selected messages (the gatebox_message_actions
hook, e.g. Anti-Spam's Learn as spam)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from firmware import plugins
from webui.safe_redirect import local_or

from .. import directory, maildir
from .blueprint import blueprint
from .common import actor, render, store, users

SORT_KEYS = {
    "date": lambda m: m.id,   # Maildir names start with the delivery time
    "from": lambda m: m.sender.lower(),
    "subject": lambda m: m.subject.lower(),
    "size": lambda m: m.size,
}
MAX_SHOWN_BYTES = 2 * 1024 * 1024
MAX_ACTED = 100         # selected messages one button press acts on at most


def message_actions() -> list:
    """The buttons the licensed SoftPaks add for a stored message, less those
    meant for the quarantine only (an action's `places`, both when absent)."""
    return [action for batch in plugins.active_plugin_manager(store()).hook
            .gatebox_message_actions(store=store()) for action in batch or ()
            if "mailbox" in getattr(action, "places", ("quarantine", "mailbox"))]


def _mailbox(user: str):
    """The Maildir of a product user; 404 for any other name."""
    if not directory.is_user(store(), user):
        abort(404)
    return maildir.mailbox_path(store(), store().data_dir, user, store().get("email.domain"))


@blueprint.route("/mailboxes")
def mailboxes():
    user = request.args.get("user", "")
    if not user:
        return render("mailserver/mailboxes.html", users=users(), user="", listing=None)
    sort = request.args.get("sort", "date")
    sort = sort if sort in SORT_KEYS else "date"
    descending = request.args.get("order") == "desc"
    listing = sorted(maildir.messages(_mailbox(user)), key=SORT_KEYS[sort], reverse=descending)
    return render("mailserver/mailboxes.html", users=users(), user=user, listing=listing, sort=sort,
                  descending=descending, form=FlaskForm(), actions=message_actions())


@blueprint.route("/mailboxes/<user>/delete", methods=["POST"])
def mailboxes_delete(user: str):
    path = _mailbox(user)
    if not FlaskForm().validate_on_submit():
        abort(400)
    chosen = request.form.getlist("message")
    if not chosen:
        flash("Select one or more messages first.", "error")
    else:
        deleted = sum(maildir.remove(path, message_id) for message_id in chosen)
        store().audit(actor(), f"delete {deleted} message(s) from the mailbox of {user}")
        flash(f"{deleted} message(s) deleted.", "ok")
    return redirect(local_or(request.form.get("back"), url_for(".mailboxes", user=user)))


@blueprint.route("/mailboxes/<user>/action/<name>", methods=["POST"])
def mailboxes_action(user: str, name: str):
    path = _mailbox(user)
    if not FlaskForm().validate_on_submit():
        abort(400)
    action = next((a for a in message_actions() if a.name == name), None)
    if action is None:
        abort(404)
    chosen = request.form.getlist("message")[:MAX_ACTED]
    if not chosen:
        flash("Select one or more messages first.", "error")
    for message_id in chosen:
        stored = maildir.find(path, message_id)
        if stored is None:
            continue
        with open(stored.path, "rb") as handle:
            raw = handle.read(MAX_SHOWN_BYTES)
        about = {"where": "mailbox", "sender": stored.sender, "recipients": [user],
                 "actor": actor()}
        try:
            flash(action.run(store(), raw, about), "ok")
        except ValueError as error:
            flash(f"{action.label}: {error}", "error")
    return redirect(local_or(request.form.get("back"), url_for(".mailboxes", user=user)))


@blueprint.route("/mailboxes/<user>/purge", methods=["GET", "POST"])
def mailboxes_purge(user: str):
    path = _mailbox(user)
    form = FlaskForm()
    if form.validate_on_submit():
        count = maildir.purge(path)
        store().audit(actor(), f"purge the mailbox of {user} ({count} message(s))")
        flash(f"Purged: {count} message(s) deleted from the mailbox of {user}.", "ok")
        return redirect(url_for(".mailboxes", user=user))
    return render("mailserver/mailbox_purge.html", user=user, form=form,
                  count=len(maildir.messages(path)))


@blueprint.route("/mailboxes/<user>/message/<message_id>")
def mailboxes_message(user: str, message_id: str):
    stored = maildir.find(_mailbox(user), message_id)
    if stored is None:
        abort(404)
    with open(stored.path, "rb") as handle:
        raw = handle.read(MAX_SHOWN_BYTES + 1)
    # Shown as text inside <pre> with Jinja's escaping: markup in a message is
    # displayed, never interpreted.
    response = render_template("mailserver/message.html", user=user, stored=stored,
                               text=raw[:MAX_SHOWN_BYTES].decode("utf-8", errors="replace"),
                               truncated=len(raw) > MAX_SHOWN_BYTES)
    # This window loads nothing at all, not even the box's own script.
    return response, 200, {"Content-Security-Policy": "default-src 'none'; style-src 'self'"}
