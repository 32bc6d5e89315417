"""Anti-Virus > EICAR Test: one button sends the EICAR test file to the box's
own SMTP port the way a server outside would, and the page shows the reply,
where the message went (rejected, or quarantined with its quarantine id) and
the notices the box queued for it."""

from __future__ import annotations

from flask import abort, render_template
from flask_wtf import FlaskForm
from wtforms import StringField

from firmware.mail.addresses import is_clean
from firmware.mail.bounce import admin_address
from webui.context import actor, store

from .. import eicar, status
from .blueprint import blueprint

INTRO = ("Sends the EICAR test file, a harmless file every virus scanner recognises, as an "
         "attachment to the box's own SMTP port, the way a server outside sends mail: it goes "
         "through everything real mail goes through. The address below is both sender and "
         "recipient, so any notice goes to it.")


class TestForm(FlaskForm):
    address = StringField("Send to (and from)")


def _render(form, outcome=None, status_code=200):
    box = store()
    host, port = eicar.smtp_address(box.data_dir)
    return render_template("antivirus/eicar.html", form=form, intro=INTRO, outcome=outcome,
                           host=host, port=port, scanner=status.scanner_state(box),
                           action=box.get("antivirus.action")), status_code


@blueprint.route("/eicar-test", endpoint="eicar")
def eicar_test():
    return _render(TestForm(formdata=None, address=admin_address(store().snapshot())))


@blueprint.route("/eicar-test/send", methods=["POST"])
def eicar_send():
    form = TestForm()
    if not form.validate():
        abort(400)
    address = (form.address.data or "").strip()
    if "@" not in address or not is_clean(address) or len(address) > 254:
        form.address.errors = ["an email address (name@domain)"]
        return _render(form, status_code=400)
    box = store()
    outcome = eicar.run(box.data_dir, address, address, box.get("system.hostname"))
    box.audit(actor(), "EICAR test", address,
              f"{outcome.where}: {outcome.code} {outcome.reply}"[:300])
    return _render(form, outcome)
