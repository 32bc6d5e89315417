"""GTUBE, the Generic Test for Unsolicited Bulk Email: a message holding the
standard string is spam whatever else it holds, so an administrator can
test the filter's actions end to end with an ordinary mail client."""

from __future__ import annotations

from .rule import Message, Rule

GTUBE_STRING = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
GTUBE_SCORE = 1000.0


def _has_gtube(message: Message) -> str | None:
    view = message.view
    # Any part: a client may send the test as HTML only, or in the subject.
    for where, text in (("body", view.text), ("HTML part", view.html_text),
                        ("subject", view.header("Subject") or "")):
        if GTUBE_STRING in text:
            return f"the GTUBE test string in the {where}"
    return None


GTUBE = Rule("GTUBE", GTUBE_SCORE, "The GTUBE test string: always spam, to test the filter's "
             "actions. Scored whenever the Content Filter is active.", _has_gtube)
