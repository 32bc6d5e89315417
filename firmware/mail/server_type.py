"""The server type the mail stack runs as.

A database written by a firmware that offered Multi-drop, Mirrored, ETRN or
Mail-bagging may still hold one of them. None of them is in this firmware,
and each keeps the office's mailboxes on the box, so the box runs such a
database as Stand-Alone (mail that arrives by SMTP reaches the mailboxes)
and says so in the log, once per process, rather than leave mail waiting for
a retrieval that never runs."""

from __future__ import annotations

import logging

from firmware.config.schema import NOT_YET_SERVER_TYPE_RUNS_AS, NOT_YET_SERVER_TYPES

log = logging.getLogger("gatebox.mail")
_reported: set = set()


def in_effect(settings) -> str:
    stored = settings["email.server_type"]
    if stored not in NOT_YET_SERVER_TYPES:
        return stored
    if stored not in _reported:
        _reported.add(stored)
        log.warning("email.server_type is '%s', which is not in this firmware yet; the box runs "
                    "as '%s' (Email Server > Settings > Server Type)", stored,
                    NOT_YET_SERVER_TYPE_RUNS_AS)
    return NOT_YET_SERVER_TYPE_RUNS_AS
