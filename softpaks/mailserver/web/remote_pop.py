"""Email Server > Remote POP (ISMail): further POP3/IMAP mailboxes, each
fetched into one local user's mailbox on the retrieval schedule, in every
server type that keeps mailboxes. The password is never sent back to the
browser: the edit page's field stays empty and empty means "keep it"."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, SelectField, StringField

from firmware.mail import server_type

from ..retrieval import isp_accounts
from .common import ActionForm, actor, list_action, refuse, render, store, user_choices

# Its own blueprint: the page sits in the Email Server menu, not under Users & Groups.
blueprint = Blueprint("remote_pop", __name__, url_prefix="/email-server/remote-pop",
                      template_folder="templates")

PROTOCOL_CHOICES = [("pop3", "POP3"), ("imap", "IMAP")]
TLS_CHOICES = [("tls", "TLS (POP3S / IMAPS)"), ("starttls", "STARTTLS / STLS"),
               ("none", "None (password sent in clear)")]


class RemotePopForm(FlaskForm):
    host = StringField("Mail Server")
    port = StringField("Port", render_kw={"placeholder": "usual port", "inputmode": "numeric"})
    protocol = SelectField("Protocol", choices=PROTOCOL_CHOICES, validate_choice=False)
    tls = SelectField("Connection Security", choices=TLS_CHOICES, validate_choice=False)
    verify = BooleanField("Check the server's certificate")
    login = StringField("Login Name", render_kw={"autocomplete": "off"})
    password = PasswordField("Password", render_kw={"autocomplete": "new-password"})
    recipient = SelectField("Local Recipient", validate_choice=False)
    enabled = BooleanField("Fetch this account")
    original = HiddenField()   # the account being modified; empty when adding


@blueprint.route("")
def remote_pop():
    rows = [(str(a.id), (a.host, str(a.port), a.protocol.upper(), _security(a), a.login,
                         a.recipient, "yes" if a.enabled else "no", _last(a.id)))
            for a in isp_accounts.remote_accounts(store())]
    return render("mailserver/remote_pop.html", rows=rows, form=ActionForm(),
                  mailboxes=server_type.keeps_mailboxes(store().all()))


@blueprint.route("/action", methods=["POST"])
def remote_pop_action():
    return list_action(".remote_pop", ".remote_pop_edit",
                       lambda chosen: isp_accounts.delete_remote_account(store(), chosen, actor=actor()),
                       "Remote POP account")


@blueprint.route("/edit", methods=["GET", "POST"])
def remote_pop_edit():
    original = request.args.get("name", "")
    existing = None
    if original:
        try:
            existing = isp_accounts.remote_account(store(), original)
        except isp_accounts.AccountInputError:
            existing = None
        if existing is None:
            flash(f"Remote POP account '{original[:20]}': no such account", "error")
            return redirect(url_for(".remote_pop"))
    form = RemotePopForm(**_initial(existing))
    form.recipient.choices = user_choices()
    if form.validate_on_submit() and _save(form):
        return redirect(url_for(".remote_pop"))
    return render("mailserver/remote_pop_edit.html", 400 if request.method == "POST" else 200,
                  form=form, password_set=bool(existing and existing.password_set))


def _initial(existing) -> dict:
    if existing is None:
        return {"protocol": "pop3", "tls": "tls", "verify": True, "enabled": True}
    return {"host": existing.host, "port": str(existing.port), "protocol": existing.protocol,
            "tls": existing.tls, "verify": existing.verify, "login": existing.login,
            "recipient": existing.recipient, "enabled": existing.enabled,
            "original": str(existing.id)}


# The field a refusal belongs beside, by the name it starts with.
_FIELDS = {"Host": "host", "Port": "port", "Protocol": "protocol", "Connection Security": "tls",
           "Login Name": "login", "Password": "password", "Local Recipient": "recipient"}


def _save(form) -> bool:
    try:
        number = isp_accounts.save_remote_account(
            store(), host_name=form.host.data or "", port_text=form.port.data or "",
            protocol_name=form.protocol.data or "", tls=form.tls.data or "",
            verify=form.verify.data, login_name=form.login.data or "",
            password_text=form.password.data or None, recipient=form.recipient.data or "",
            enabled=form.enabled.data,
            account_id=int(form.original.data) if (form.original.data or "").isdigit() else None,
            actor=actor())
    except isp_accounts.AccountInputError as error:
        text = str(error)
        name = next((f for label, f in _FIELDS.items() if text.startswith(label)), "host")
        refuse(getattr(form, name), text)
        return False
    flash(f"Remote POP account {number}: {form.login.data.strip()} is fetched into "
          f"{form.recipient.data}'s mailbox.", "ok")
    return True


def _security(account) -> str:
    label = {"tls": "TLS", "starttls": "STARTTLS", "none": "none"}[account.tls]
    return label + (" (certificate not checked)" if account.tls != "none" and not account.verify else "")


def _last(number: int) -> str:
    row = store().db.execute("SELECT ok, result, last_error FROM mail_retrieval_state "
                             "WHERE account = ?", [f"remote:{number}"]).fetchone()
    if row is None:
        return "not fetched yet"
    ok, result, error = row
    return result if ok else f"failed: {error or result}"
