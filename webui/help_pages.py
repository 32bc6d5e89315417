"""The "?" of every page: help written for that page (templates/help/)."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from jinja2 import TemplateNotFound

blueprint = Blueprint("help", __name__)


@blueprint.route("/help/<name>")
def show(name: str):
    if not name.replace("-", "").replace("_", "").isalnum():
        abort(404)
    try:
        return render_template(f"help/{name}.html")
    except TemplateNotFound:
        abort(404)
