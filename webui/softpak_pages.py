"""Pages a SoftPak brings itself (its Flask blueprint, announced through the
`gatebox_menu_pages` hook). Every INSTALLED SoftPak's blueprint is mounted
when the app is created; whether its license is active is asked on each
request, so activating a key or a lapse takes effect without restarting the
UI. While it is not active, its pages say what the SoftPak adds and link to
activation, and nothing behind them runs."""

from __future__ import annotations

from flask import render_template, request

from firmware.licensing import granted
from firmware.plugins import installed_softpaks, softpak_menu_pages

from . import context


def pages() -> list[dict]:
    """The SoftPak menu entries that have a page of their own."""
    return [page for page in softpak_menu_pages() if page.get("blueprint") is not None]


def install(app):
    """Call after auth.install: signing in comes before the license check."""
    owners = {}
    for page in pages():
        blueprint = page["blueprint"]
        if blueprint.name not in app.blueprints:
            app.register_blueprint(blueprint)
        owners[blueprint.name] = page["softpak"]

    @app.before_request
    def require_active_license():
        softpak = owners.get(request.blueprint)
        if softpak is None or softpak in context.store().active_softpaks():
            return None
        # A POST must not look as if it had done something.
        return offer_page(softpak), 200 if request.method == "GET" else 403


def offer_page(softpak: str) -> str:
    """What the SoftPak adds, for the page asked for, and where to activate it."""
    endpoint = request.endpoint or ""
    page = next((p for p in pages() if p["softpak"] == softpak and p.get("endpoint")
                 and (endpoint == p["endpoint"] or endpoint.startswith(p["endpoint"] + "_"))), {})
    # Granted but not active: the license has lapsed (what a lapse means is the SoftPak's to say).
    expired = softpak in granted(context.store())
    return render_template("softpak_page.html", label=page.get("title", ""),
                           purpose=page.get("purpose", ""), expired=expired,
                           lapsed=page.get("lapsed", ""),
                           manifest=installed_softpaks().get(softpak),
                           relay=context.store().get("email.server_type") == "relay")
