"""The content rules on their own: every Default, strict-MIME and Heuristic
rule, and GTUBE, fires on a message made to show its sign and stays quiet on
clean office mail and on the near misses that legitimate mailers send. The
messages are parsed by the real message_text, as the data-stage check does."""

import datetime
import email.header
import email.utils
import time

import pytest

from softpaks.antispam.rules import GTUBE_STRING, evaluate
from softpaks.antispam.rules.gtube import GTUBE
from softpaks.antispam.rules.heuristic import HEURISTIC_RULES
from softpaks.antispam.rules.mime_rules import ALL_DEFAULT_RULES, DEFAULT_RULES, STRICT_MIME_RULES
from softpaks.antispam.rules.rule import Message

NOW = time.time()
TEXT = ("Hello Bob, here are the minutes of the meeting about the budget and the new "
        "office.\nSee https://www.example.org/minutes for the details.\nAlice\n")
HTML = ("<html><body><p>Hello Bob, here are the minutes of the meeting about the budget and "
        "the new office.</p><p>See <a href=\"https://www.example.org/minutes\">"
        "www.example.org/minutes</a> for the details.</p><p>Alice</p></body></html>")


def headers(**changes) -> dict:
    """The headers of a clean message; a value None leaves the field out."""
    found = {
        "From": "Alice Example <alice@outside.test>",
        "To": "Bob <bob@example.com>",
        "Subject": "Minutes of Tuesday's meeting",
        "Date": email.utils.formatdate(NOW - 600),
        "Message-ID": "<20261202101500.4711@mail.outside.test>",
        "MIME-Version": "1.0",
    }
    for name, value in changes.items():
        found[name.replace("_", "-")] = value
    return {name: value for name, value in found.items() if value is not None}


def build(fields: dict, body: str, extra: bytes = b"") -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return head.encode() + extra + b"\r\n" + body.replace("\n", "\r\n").encode()


def alternative(text=TEXT, html=HTML, **changes) -> bytes:
    body = (f"--b1\nContent-Type: text/plain; charset=utf-8\n\n{text}\n"
            f"--b1\nContent-Type: text/html; charset=utf-8\n\n{html}\n--b1--\n")
    return build(headers(**{"Content-Type": 'multipart/alternative; boundary="b1"', **changes}),
                 body)


def plain(text=TEXT, **changes) -> bytes:
    return build(headers(**{"Content-Type": "text/plain; charset=utf-8", **changes}), text)


def html_only(html=HTML, **changes) -> bytes:
    return build(headers(**{"Content-Type": "text/html; charset=utf-8", **changes}), html)


def with_attachment(name: str, **changes) -> bytes:
    body = (f"--m1\nContent-Type: text/plain; charset=utf-8\n\n{TEXT}\n"
            f"--m1\nContent-Type: application/octet-stream\n"
            f"Content-Disposition: attachment; filename=\"{name}\"\n"
            f"Content-Transfer-Encoding: base64\n\nTVqQAAMAAAAEAAAA\n--m1--\n")
    return build(headers(**{"Content-Type": 'multipart/mixed; boundary="m1"', **changes}), body)


def fired(message: bytes, default=True, heuristic=True) -> dict:
    hits = evaluate(Message.of(message, NOW), default=default, heuristic=heuristic)
    return {hit.name: hit for hit in hits}


CLEAN = {
    "text and HTML": alternative(),
    "plain text": plain(),
    "a PDF attachment": with_attachment("minutes.pdf"),
    "a Date in GMT": plain(Date=email.utils.formatdate(NOW - 600, usegmt=True)),
    "a Date with its zone named in a comment": plain(
        Date=email.utils.format_datetime(datetime.datetime.fromtimestamp(
            NOW - 600, datetime.timezone(datetime.timedelta(hours=1)))) + " (CET)"),
    "real Outlook": plain(X_Mailer="Microsoft Outlook 16.0",
                          Message_ID="<000001d9a1b2$3c4d5e60$b5e7f720$@outside.test>"),
    "Exchange Online": plain(X_Mailer="Microsoft Outlook 16.0",
                             Message_ID="<AM0PR07MB4481C3D1E9F2@AM0PR07MB4481.eurprd07.prod."
                                        "outlook.com>"),
    "Thunderbird naming itself twice": plain(
        X_Mailer="Mozilla Thunderbird", User_Agent="Mozilla/5.0 (X11; Linux) Thunderbird/115.0"),
    "a subject with one exclamation mark": plain(Subject="Thanks for the help!"),
    "a short capital acronym": plain(Subject="FYI: the ACME offer"),
    "a link text of the same site": alternative(
        html=HTML.replace('>www.example.org/minutes<', '>example.org/minutes<')),
    "a name holding its own address": plain(From='"alice@outside.test" <alice@outside.test>'),
    "UTF-8 encoded as RFC 2047": plain(Subject="=?utf-8?q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?="),
    "a Date a day old": plain(Date=email.utils.formatdate(NOW - 86400)),
    "a Date an hour ahead": plain(Date=email.utils.formatdate(NOW + 3600)),
}


@pytest.mark.parametrize("name", CLEAN)
def test_clean_mail_fires_no_rule(name):
    assert fired(CLEAN[name]) == {}


def _many_parts() -> bytes:
    parts = "".join(f"--m1\nContent-Type: text/plain\n\npart {n}\n" for n in range(120))
    return build(headers(**{"Content-Type": 'multipart/mixed; boundary="m1"'}), parts + "--m1--\n")


def _qp_long() -> bytes:
    return build(headers(**{"Content-Type": "text/plain; charset=utf-8",
                            "Content-Transfer-Encoding": "quoted-printable"}), "x" * 120 + "\n")


# Each rule, a message showing its sign, and a bit of what the detail says.
EXAMPLES = {
    # GTUBE
    "GTUBE": (plain(text=f"A test.\n{GTUBE_STRING}\n"), "GTUBE test string"),
    # Default: built-ins
    "MISSING_FROM": (plain(From=None), "no From"),
    "MISSING_HEADERS": (plain(To=None), "no To or Cc"),
    "MISSING_SUBJECT": (plain(Subject=None), "no Subject"),
    "DUPLICATE_HEADER": (build(headers(**{"Content-Type": "text/plain"}), TEXT,
                               b"Subject: a second subject\r\n"), "Subject"),
    "EMPTY_MESSAGE": (plain(text="\n"), "no text"),
    # Default: strict MIME
    "MIME_NO_VERSION": (alternative(MIME_Version=None), "without MIME-Version"),
    "MIME_BOUNDARY": (build(headers(**{"Content-Type": 'multipart/mixed; boundary="m1"'}),
                            "--m1\nContent-Type: text/plain\n\nnever closed\n"),
                      "CloseBoundaryNotFoundDefect"),
    "MIME_BAD_BASE64": (build(headers(**{"Content-Type": "text/plain",
                                         "Content-Transfer-Encoding": "base64"}),
                              "SGVsbG8gQm9i!!!\n"), "base64"),
    "MIME_HEADER_SYNTAX": (b" folded first\r\n" + plain(), "FirstHeaderLineIsContinuationDefect"),
    "MIME_UNKNOWN_CHARSET": (plain(Content_Type="text/plain; charset=klingon-8"), "klingon-8"),
    "MIME_UNKNOWN_ENCODING": (plain(Content_Transfer_Encoding="x-uuencode-ish"),
                              "Content-Transfer-Encoding"),
    "MIME_QP_LONG_LINE": (_qp_long(), "76"),
    "MIME_TOO_MANY_PARTS": (_many_parts(), "MIME parts"),
    "MIME_8BIT_HEADER": (plain(Subject="Gr\u00fc\u00dfe".encode("latin-1").decode("latin-1")),
                         "8-bit"),
    # Heuristic
    "MISSING_DATE": (plain(Date=None), "no Date"),
    "INVALID_DATE": (plain(Date="next Tuesday, around noon"), "next Tuesday"),
    "DATE_IN_PAST_96_XX": (plain(Date=email.utils.formatdate(NOW - 30 * 86400)), "30 days"),
    "DATE_IN_FUTURE_12_XX": (plain(Date=email.utils.formatdate(NOW + 2 * 86400)), "48 hours"),
    "MISSING_MID": (plain(Message_ID=None), "no Message-ID"),
    "INVALID_MSGID": (plain(Message_ID="just-some-text"), "just-some-text"),
    "FROM_NAME_OTHER_ADDRESS": (plain(From='"service@paypal.com" <x7@bulk.test>'),
                                "service@paypal.com"),
    "SUBJ_ALL_CAPS": (plain(Subject="CHEAP MEDS FOR YOU TODAY"), "all capitals"),
    "SUBJ_PUNCTUATION": (plain(Subject="Act now!!! Free $$$"), "punctuation"),
    "MIME_HTML_ONLY": (html_only(), "no text part"),
    "MPART_ALT_DIFF": (alternative(html="<p>Cheap watches, replica bags and designer shoes "
                                        "shipped overnight at unbeatable prices.</p>"), "share"),
    "NUMERIC_HTTP_ADDR": (plain(text="Log in at http://192.0.2.77/login to keep your account.\n"),
                          "192.0.2.77"),
    "LINK_TEXT_OTHER_DOMAIN": (alternative(html=HTML.replace(
        "https://www.example.org/minutes", "https://example-org.login-verify.test/")),
        "login-verify.test"),
    "EXECUTABLE_ATTACHMENT": (with_attachment("setup.exe"), "setup.exe"),
    "ATTACH_DOUBLE_EXTENSION": (with_attachment("invoice.pdf.exe"), ".pdf"),
    "FORGED_OUTLOOK_MID": (plain(X_Mailer="Microsoft Outlook Express 6.00.2900.2180",
                                 Message_ID="<8f3kq2m@bulk.test>"), "not Outlook's"),
    "MAILER_CONFLICT": (plain(X_Mailer="Microsoft Outlook 16.0",
                              Message_ID="<000001d9a1b2$3c4d5e60$b5e7f720$@outside.test>",
                              User_Agent="Mozilla Thunderbird 115"), "two mailers"),
}


def test_every_rule_has_an_example_and_every_example_a_rule():
    names = [rule.name for rule in (GTUBE,) + ALL_DEFAULT_RULES + HEURISTIC_RULES]
    assert len(names) == len(set(names))
    assert set(names) == set(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_rule_fires_on_its_example_with_its_score_and_a_detail(name):
    message, says = EXAMPLES[name]
    hits = fired(message)
    assert name in hits, f"{name} did not fire; fired: {sorted(hits)}"
    rule = next(r for r in (GTUBE,) + ALL_DEFAULT_RULES + HEURISTIC_RULES if r.name == name)
    assert hits[name].score == rule.score
    assert says in hits[name].detail


def test_gtube_scores_1000_in_any_part_and_with_every_set_off():
    assert GTUBE.score == 1000
    for message in (plain(text=GTUBE_STRING), html_only(html=f"<p>{GTUBE_STRING}</p>"),
                    with_attachment("a.txt", Subject=GTUBE_STRING)):
        assert set(fired(message, default=False, heuristic=False)) == {"GTUBE"}
    assert fired(plain(text=GTUBE_STRING[:-1] + "Y"), default=False, heuristic=False) == {}


def test_the_sets_run_only_when_asked():
    message, _ = EXAMPLES["MIME_NO_VERSION"]
    assert "MIME_NO_VERSION" not in fired(message, default=False)
    message, _ = EXAMPLES["SUBJ_ALL_CAPS"]
    assert "SUBJ_ALL_CAPS" not in fired(message, heuristic=False)
    assert {rule.name for rule in DEFAULT_RULES + STRICT_MIME_RULES} == \
        {rule.name for rule in ALL_DEFAULT_RULES}


@pytest.mark.parametrize("name", ["mail.exe.", "mail.EXE", "photo.jpg.scr", "run.JS",
                                  "tool.msi", "script.vbs", "archive.jar", "=?utf-8?q?a.bat?="])
def test_executable_types_are_found_whatever_the_case_or_trailing_dots(name):
    assert "EXECUTABLE_ATTACHMENT" in fired(with_attachment(name))


@pytest.mark.parametrize("name", ["report.pdf", "exe-manual.pdf", "notes.txt", "program"])
def test_other_attachments_are_not_programs(name):
    assert "EXECUTABLE_ATTACHMENT" not in fired(with_attachment(name))


@pytest.mark.parametrize("href", ["http://3232235777/", "http://0x7f.1/", "https://[2001:db8::1]/",
                                  "http://198.51.100.4:8080/x"])
def test_numeric_links_in_html_are_found_in_every_notation(href):
    message = alternative(html=HTML.replace("https://www.example.org/minutes", href))
    assert "NUMERIC_HTTP_ADDR" in fired(message)


@pytest.mark.parametrize("text, href, fires", [
    ("www.paypal.com", "https://paypal.com.account-check.test/", True),
    ("https://www.mybank.test/login", "http://192.0.2.9/", True),
    ("paypal.com", "https://www.paypal.com/signin", False),
    ("Click here", "https://elsewhere.test/", False),
    ("shop.example.com", "https://example.com/shop", False),
])
def test_link_text_naming_another_domain(text, href, fires):
    message = alternative(html=f'<p>{HTML}<a href="{href}">{text}</a></p>')
    assert ("LINK_TEXT_OTHER_DOMAIN" in fired(message)) is fires


@pytest.mark.parametrize("subject, rule", [
    ("URGENT!!!", "SUBJ_PUNCTUATION"),
    ("$$$ for you", "SUBJ_PUNCTUATION"),
    ("Hi! $ Win? #1 %off", "SUBJ_PUNCTUATION"),
    ("YOU HAVE WON A PRIZE", "SUBJ_ALL_CAPS"),
    ("\u0412\u042b \u0412\u042b\u0418\u0413\u0420\u0410\u041b\u0418 \u041f\u0420\u0418\u0417",
     "SUBJ_ALL_CAPS"),
])
def test_subject_signs(subject, rule):
    assert rule in fired(plain(Subject=email.header.Header(subject, "utf-8").encode()))


def test_a_forged_outlook_mid_and_a_real_one():
    assert "FORGED_OUTLOOK_MID" in fired(plain(X_Mailer="Microsoft Office Outlook 12.0",
                                               Message_ID="<4b2c@mailer.bulk.test>"))
    assert "FORGED_OUTLOOK_MID" in fired(plain(X_Mailer="Microsoft Outlook 16.0", Message_ID=None))
    assert "FORGED_OUTLOOK_MID" not in fired(plain(
        X_Mailer="Microsoft Outlook 16.0",
        Message_ID="<9F3A0C7E2B1D4E5FA6B7C8D9E0F1A2B3@EXCH01.corp.outside.test>"))


def test_parts_that_agree_with_different_markup_do_not_disagree():
    html = ("<div style='x'><b>Hello</b> Bob, here are the <i>minutes</i> of the meeting "
            "about the budget and the new office.<br>See the details online.</div>")
    text = "Hello Bob, here are the minutes of the meeting about the budget and the new office."
    assert "MPART_ALT_DIFF" not in fired(alternative(text=text, html=html))

