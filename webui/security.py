"""Response headers, CSRF protection and the refusal page for forms without
a valid CSRF token."""

from __future__ import annotations

from flask import render_template
from flask_wtf.csrf import CSRFError, CSRFProtect

# No inline script, nothing from other sites: a message that slipped through
# escaping still could not run.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


csrf = CSRFProtect()


def install(app):
    csrf.init_app(app)

    @app.after_request
    def headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        # Same-origin only: the CSRF check over HTTPS compares the Referer with the host.
        response.headers["Referrer-Policy"] = "same-origin"
        if response.mimetype == "text/html":
            # Admin pages hold settings and mail; never keep them in a shared cache.
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(CSRFError)
    def csrf_refused(error):
        return render_template("error.html", title="Form refused",
                               message=f"{error.description} Nothing was changed. "
                                       "Reload the page and try again."), 400
