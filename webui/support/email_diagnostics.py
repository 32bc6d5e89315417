"""Support & Diagnostics > Email Diagnostics: the Run button (a POST with its
CSRF token) starts a job; the page then asks the job's JSON for the results
and shows each check as it finishes (static/email_diagnostics.js). Without
the script, reloading the page shows how far the job has come."""

from __future__ import annotations

import ipaddress

from flask import (Blueprint, abort, current_app, flash, jsonify, redirect, render_template,
                   request, url_for)
from flask_wtf import FlaskForm

from firmware.mail import diagnostics

from .. import context
from . import diagnostics_jobs

blueprint = Blueprint("email_diagnostics", __name__, url_prefix="/support/email-diagnostics")


@blueprint.route("/")
def index():
    job_id = request.args.get("job", "")
    job = diagnostics_jobs.read(current_app.config["GATEBOX_DATA"], job_id) if job_id else None
    if job_id and job is None:
        flash("That diagnostics run is no longer kept; run the diagnostics again.", "warning")
    store = context.store()
    return render_template("email_diagnostics.html", form=FlaskForm(), job=job,
                           server_type=store.get("email.server_type"),
                           public_address=job.get("public_address", "") if job else "")


@blueprint.route("/run", methods=["POST"])
def index_run():
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400)
    public_address = request.form.get("public_address", "").strip()
    if public_address:
        try:
            public_address = str(ipaddress.ip_address(public_address))
        except ValueError:
            flash(f"{public_address!r} is not an IP address; nothing was run.", "error")
            return redirect(url_for(".index"))
    store = context.store()
    job_id = diagnostics_jobs.start(diagnostics.context_for(store, public_address))
    store.audit(context.actor(), "run Email Diagnostics", "", job_id)
    return redirect(url_for(".index", job=job_id), code=303)


@blueprint.route("/jobs/<job_id>.json")
def index_job(job_id: str):
    job = diagnostics_jobs.read(current_app.config["GATEBOX_DATA"], job_id)
    if job is None:
        abort(404)
    response = jsonify(job)
    response.headers["Cache-Control"] = "no-store"
    return response
