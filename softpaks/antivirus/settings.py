"""The Anti-Virus SoftPak's settings, declared once whether or not the
SoftPak is licensed, so values outlive a lapse. Labels are ISMail EP's
where it has them (Anti-Virus Scanner Active, Notify Recipient If Virus
Found, Notify Sender If Virus Found, Scan Entire Messages for Viruses)."""

from __future__ import annotations

from firmware.config.types import Bool, Choice, Integer, Setting, Text

SETTINGS_MENU = "Anti-Virus > Settings"
SIGNATURES_MENU = "Anti-Virus > Signatures"

ENABLED = "antivirus.enabled"
ACTION = "antivirus.action"
NOTIFY_RECIPIENT = "antivirus.notify_recipient"
NOTIFY_SENDER = "antivirus.notify_sender"
NOTIFY_ADMIN = "antivirus.notify_admin"
ON_FAILURE = "antivirus.on_failure"
MAX_SCAN_MB = "antivirus.max_scan_mb"
SCAN_ENTIRE_MESSAGE = "antivirus.scan_entire_message"
SCAN_PARTS = "antivirus.scan_parts"
UPDATE_SOURCE = "antivirus.update_source"
MIRROR_URL = "antivirus.mirror_url"
UPDATE_HOURS = "antivirus.update_hours"

REJECT, QUARANTINE = "reject", "quarantine"
TEMPFAIL, ACCEPT_UNSCANNED = "tempfail", "accept"
ONLINE, MIRROR, OFFLINE = "online", "mirror", "offline"

SETTINGS = [
    Setting(ENABLED, Bool(), False, "Anti-Virus Scanner Active", SETTINGS_MENU,
            "Scan each message sent or received before it is accepted. Needs signatures "
            "and enough memory for them (the page says how much the box has)."),
    Setting(ACTION, Choice(((REJECT, "Reject the message"),
                            (QUARANTINE, "Quarantine the message"))), REJECT,
            "Infected Message Action", SETTINGS_MENU,
            "Reject: the sending server gets 554 5.7.1 with the virus name and the box never "
            "generates a bounce. Quarantine: the message is held where only the administrator "
            "can release or delete it."),
    Setting(NOTIFY_RECIPIENT, Bool(), False, "Notify Recipient If Virus Found", SETTINGS_MENU,
            "A short notice to each local recipient saying a message was stopped, without "
            "the message."),
    Setting(NOTIFY_SENDER, Bool(), False, "Notify Sender If Virus Found", SETTINGS_MENU,
            "Only senders of the box's own (LAN or signed-in) are ever notified: many viruses "
            "forge the sender's address, so a notice to an outside sender would go to an "
            "innocent party."),
    Setting(NOTIFY_ADMIN, Bool(), False, "Send a Copy of Notices to the Administrator",
            SETTINGS_MENU,
            "Each virus found is also reported to the Administrator Address "
            "(Email Server > Settings > Advanced)."),
    Setting(ON_FAILURE, Choice(((TEMPFAIL, "Reject temporarily (451): mail waits at the sender"),
                                (ACCEPT_UNSCANNED, "Accept unscanned, with a header saying so"))),
            TEMPFAIL, "When the Scanner Fails", SETTINGS_MENU,
            "What happens while the scanner is down, times out or has a broken signature "
            "database. Rejecting temporarily lets nothing pass unscanned; the sending "
            "servers retry later."),
    Setting(MAX_SCAN_MB, Integer(1, 100), 25, "Maximum Size to Scan (MB)", SETTINGS_MENU,
            "Larger messages are accepted unscanned with an 'X-Virus-Scanned: skipped (size)' "
            "header, and counted."),
    Setting(SCAN_ENTIRE_MESSAGE, Bool(), True, "Scan Entire Messages for Viruses", SETTINGS_MENU,
            "Scan the whole message as one stream (the scanner understands MIME). Off: each "
            "MIME part is scanned on its own instead."),
    Setting(SCAN_PARTS, Bool(), False, "Also Scan Each MIME Part", SETTINGS_MENU,
            "Besides the whole message, scan each attachment on its own (finds archives "
            "that the whole-message scan misses; costs time)."),
    Setting(UPDATE_SOURCE, Choice(((ONLINE, "Online (the ClamAV mirrors)"),
                                   (MIRROR, "A mirror on the LAN"),
                                   (OFFLINE, "Offline: files and USB sticks only"))), ONLINE,
            "Signature Updates", SIGNATURES_MENU,
            "Where new signatures come from. Offline boxes import signature files by upload or "
            "from a USB stick."),
    Setting(MIRROR_URL, Text(max_length=255), "", "LAN Mirror URL", SIGNATURES_MENU,
            "http(s)://host[:port]/path of a mirror holding main.cvd, daily.cvd and "
            "bytecode.cvd (as cvdupdate serves them).",
            visible_when=(UPDATE_SOURCE, (MIRROR,))),
    Setting(UPDATE_HOURS, Integer(1, 24), 4, "Check for Updates Every (hours)", SIGNATURES_MENU,
            "At most once an hour; after a refusal by the mirrors the box waits out their "
            "cool-down."),
]
