"""Support & Diagnostics > Email Diagnostics: checks of the box's mail
configuration and of the ISP's mail systems, chosen for the configured server
type, each with its own time limit, run side by side and reported as each
finishes (pass, fail or warn, with the reason and the fix).

    plan(context)            the checks for this box's server type
    run(checks, context)     yields each Result as its check finishes
    context_for(store)       a Context from the settings store, with the shared resolver
"""

from __future__ import annotations

import os

from firmware.mail import resolver

from .plan import plan
from .result import FAIL, PASS, WARN, Context, Result
from .runner import run

__all__ = ["plan", "run", "context_for", "Context", "Result", "PASS", "FAIL", "WARN"]


# Further CA certificates the box trusts for the ISP's TLS, as the Mail
# Server's retrieval reads them: an ISP with its own CA.
ISP_CAFILE_ENV = "GATEBOX_ISP_CAFILE"


def context_for(store, public_address: str = "", cafile: str | None = None) -> Context:
    cafile = cafile or os.environ.get(ISP_CAFILE_ENV) or None
    return Context(settings=store.snapshot().values, data_dir=store.data_dir,
                   resolver=resolver.shared(), public_address=public_address, cafile=cafile)
