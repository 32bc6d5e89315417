"""What the quarantine's Anti-Spam buttons and the digest's links do.

- "Release and always allow this sender" on Email Server > Quarantine: the
  sender's address goes on the SERVER whitelist (Anti-Spam > Lists), then
  the message is released.
- A digest link: Release releases the recipient's own copy only; Release
  and always allow also puts the sender on that recipient's USER whitelist.

A whitelist entry that is already there is no error; one the lists refuse
(a null sender, an entry on the blacklist of that level) stops the action
before anything is released, with the lists' own reason."""

from __future__ import annotations

import logging

from firmware.mail.queue import Spool
from firmware.mail.queue_ops import picked_up_by_rescan
from firmware.mail.quarantine import Quarantine

from .. import lists

log = logging.getLogger("gatebox.antispam")


def _whitelist(store, sender: str, actor: str, user: str | None = None) -> str:
    if not sender:
        raise ValueError("the message has no sender address (a bounce) to put on a whitelist")
    try:
        made = lists.add(store, "white", sender, user=user, actor=actor)
    except lists.ListError as error:
        if "already on" in str(error):
            return f"<{sender}> was already on the whitelist"
        raise
    return f"<{made.entry}> added to {made.where}"


def release(store, qid: str, actor: str, recipients: list[str] | None = None) -> str:
    quarantine = Quarantine(store.data_dir)
    return quarantine.release_one(qid, Spool(store.data_dir / "queue"), picked_up_by_rescan,
                                  store, actor, recipients)


def release_and_allow(store, qid: str, sender: str, actor: str, user: str | None = None) -> str:
    Quarantine(store.data_dir).load(qid)  # NotInQueue before the whitelist changes
    done = _whitelist(store, sender, actor, user)
    new_id = release(store, qid, actor, [user] if user else None)
    return f"{done}; released as {new_id}"


class ReleaseAndAllow:
    """The quarantine page's button (hook gatebox_message_actions)."""
    name = "release_allow_sender"
    label = "Release and always allow this sender"
    places = ("quarantine",)

    def run(self, store, message: bytes, about: dict) -> str:
        if about.get("where") != "quarantine" or not about.get("id"):
            raise ValueError("only a message held in the quarantine can be released")
        item, _ = Quarantine(store.data_dir).load(str(about["id"]))
        if item.kind == "virus":
            raise ValueError("a message held for a virus is never a reason to trust its sender; "
                             "use Release if it must be delivered")
        return release_and_allow(store, str(about["id"]), str(about.get("sender") or ""),
                                 str(about.get("actor") or "system"))


def message_actions(store) -> list:
    return [ReleaseAndAllow()]
