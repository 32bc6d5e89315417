"""Anti-Spam > Content Filter: whether and how the content layers filter a
recipient's mail, and what a match leads to.

One record per scope, as ISMail EP has them on the Filters tab of a Content
Filter: Message Filter Active, Filter Type (Default and/or Custom), the
level of filtering, the Heuristic filter, the Filter Match Action and
Append [SPAM] to subject line.

Scopes:
- server ("All Domains"): the antispam.* settings below;
- domain: a local domain, a row of antispam_content_filter;
- user: a local address, a row of antispam_content_filter.
The first of user, domain, server that has a record decides, the whole
record (ISMail: a domain's filter replaces the server's, it is not merged).

The level sets two thresholds (THRESHOLDS): from the lower the message is
tagged (X-Spam-* fields, [SPAM] when tag_subject), from the higher it is
quarantined or rejected, as the action says; "mark" never goes past tagging.

A message has one action, so one record for all its recipients: at RCPT, an
untrusted inbound recipient whose record differs from the recipients
already accepted in the transaction is deferred (452 4.5.3) and the client
sends it again in a transaction of its own, as amavisd's policy banks split
mail. Clients that may relay (Trusted Networks, authenticated) are never
split: the content layers do not look at their mail."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass, replace

import click

from firmware.cli.errors import fail, reported

from firmware.config import transaction
from firmware.config.types import Bool, Choice, Invalid, Setting
from firmware.mail import addresses
from firmware.mail.policy import Check, Context, Order, tempfail
from firmware.mail.scoring import SpamPolicy

from .license import is_licensed
from .lists import DOMAIN, SERVER, USER, ListError, named_scope, resolve_scope

MENU = "Anti-Spam > Content Filter"
CHECK_NAME = "content_filter"
SPLIT_CHECK_NAME = "content_filter_split"

ACTIVE = "antispam.content_filter"
DEFAULT_FILTER = "antispam.default_filter"
CUSTOM_FILTER = "antispam.custom_filter"
HEURISTIC = "antispam.heuristic"
LEVEL = "antispam.level"
ACTION = "antispam.action"
TAG_SUBJECT = "antispam.tag_subject"

LOW, MEDIUM, HIGH = "low", "medium", "high"
MARK, QUARANTINE, REJECT = "mark", "quarantine", "reject"
LEVELS = ((LOW, "Low"), (MEDIUM, "Medium"), (HIGH, "High"))
ACTIONS = ((MARK, "Mark message and deliver to recipient"),
           (QUARANTINE, "Quarantine"),
           (REJECT, "Reject"))

# (tag, high) per level: SpamAssassin's 5.0 as Medium's tag score, amavisd's
# usual kill level of twice that; Low asks for more evidence, High for less.
THRESHOLDS = {LOW: (8.0, 15.0), MEDIUM: (5.0, 10.0), HIGH: (3.5, 7.0)}

# The record's fields, by the name they have on the command line and in the
# overrides table, with the server setting each comes from.
FIELDS = (
    ("content_filter", "active", ACTIVE),
    ("default_filter", "default", DEFAULT_FILTER),
    ("custom_filter", "custom", CUSTOM_FILTER),
    ("heuristic", "heuristic", HEURISTIC),
    ("level", "level", LEVEL),
    ("action", "action", ACTION),
    ("tag_subject", "tag_subject", TAG_SUBJECT),
)
NAMES = tuple(name for name, _, _ in FIELDS)
ATTRIBUTE = {name: attribute for name, attribute, _ in FIELDS}
SETTING_KEY = {name: key for name, _, key in FIELDS}

STRICT_MIME_WARNING = (
    "The Default filter is aggressive: it also scores messages that do not use strict MIME "
    "format, and many mailers fail to conform to MIME, so it may cause significant false "
    "positives. Use it only when senders are known to conform to MIME; the Heuristic filter "
    "alone does not require strict MIME.")

SETTINGS = [
    Setting(ACTIVE, Bool(), False, "Message Filter Active", MENU,
            "The content layers (Default, Custom and Heuristic filters, Bayes, DKIM) score "
            "inbound mail, and the Filter Match Action applies to what they find."),
    Setting(DEFAULT_FILTER, Bool(), True, "Filter Type: Default", MENU,
            "The built-in rules. " + STRICT_MIME_WARNING),
    Setting(CUSTOM_FILTER, Bool(), False, "Filter Type: Custom", MENU,
            "The administrator's own header and body rules (Anti-Spam > Rules)."),
    Setting(HEURISTIC, Bool(), True, "Heuristic filter", MENU,
            "Named rules with scores, in the manner of SpamAssassin's: forged headers, "
            "misleading links, HTML without text, the GTUBE test string and others."),
    Setting(LEVEL, Choice(LEVELS), MEDIUM, "Level of filtering", MENU,
            "Sets the two thresholds: Low tags from 8 and acts from 15, Medium from 5 and 10, "
            "High from 3.5 and 7."),
    Setting(ACTION, Choice(ACTIONS), MARK, "Filter Match Action", MENU,
            "What happens to a message scoring at least the level's higher threshold: marked "
            "and delivered, held in Email Server > Quarantine, or refused at DATA with 550 5.7.1 "
            "(no bounce is sent). From the lower threshold a message is always marked."),
    Setting(TAG_SUBJECT, Bool(), True, "Append [SPAM] to subject line", MENU,
            "A marked message's subject starts with [SPAM], for mail client filters; the "
            "X-Spam-Flag, X-Spam-Score and X-Spam-Report fields are added either way."),
]

_TYPES = {setting.key: setting.type for setting in SETTINGS}
_DEFAULTS = {setting.key: setting.default for setting in SETTINGS}

log = logging.getLogger("gatebox.antispam")


class FilterError(ValueError):
    """A Content Filter change refused; the text is meant for the administrator."""


@dataclass(frozen=True)
class FilterSettings:
    """The Content Filter record that applies (see the module docstring)."""
    active: bool
    default: bool
    custom: bool
    heuristic: bool
    level: str
    action: str
    tag_subject: bool
    scope: str          # "server", "domain example.com", "user bob@example.com"

    @property
    def thresholds(self) -> tuple[float, float]:
        return THRESHOLDS[self.level]

    @property
    def filtering(self) -> tuple:
        """What the record does to a message, its scope aside: two records
        with equal filtering may share a transaction. Inactive records all
        filter alike (not at all)."""
        if not self.active:
            return (False,)
        return (True, self.default, self.custom, self.heuristic, self.level, self.action,
                self.tag_subject)

    def policy(self) -> SpamPolicy:
        tag, high = self.thresholds
        return SpamPolicy(tag=tag,
                          quarantine=high if self.action == QUARANTINE else None,
                          reject=high if self.action == REJECT else None,
                          tag_subject=self.tag_subject,
                          name=f"content filter of {self.scope}, level {self.level}, "
                               f"action {self.action}")

    def values(self) -> dict:
        """{field name: value}, by the names of NAMES."""
        return {name: getattr(self, ATTRIBUTE[name]) for name in NAMES}


def _setting(settings, key: str):
    """The setting's value, parsed again: a value the database holds that
    its type refuses (written by hand) counts as the default, logged."""
    try:
        raw = settings[key]
    except (KeyError, TypeError):
        return _DEFAULTS[key]
    try:
        return _TYPES[key].parse(raw)
    except (Invalid, TypeError, ValueError):
        log.warning("setting %s: stored value %r refused; the default %r applies",
                    key, raw, _DEFAULTS[key])
        return _DEFAULTS[key]


def server_settings(settings) -> FilterSettings:
    """The server record ("All Domains") from a settings snapshot."""
    values = {ATTRIBUTE[name]: _setting(settings, SETTING_KEY[name]) for name in NAMES}
    return FilterSettings(scope=SERVER, **values)


def _scope_name(level: str, scope: str) -> str:
    return SERVER if level == SERVER else f"{level} {scope}"


def parse_values(raw: dict, base: FilterSettings) -> FilterSettings:
    """`base` with the fields of `raw` ({name: text}) parsed as the server
    settings are; raises FilterError naming the field and its rule."""
    changed = {}
    for name, text in raw.items():
        if name not in ATTRIBUTE:
            raise FilterError(f"'{name}' is not a Content Filter field (fields: {', '.join(NAMES)})")
        try:
            changed[ATTRIBUTE[name]] = _TYPES[SETTING_KEY[name]].parse(text)
        except Invalid as error:
            raise FilterError(f"{name} {error}") from None
    return replace(base, **changed)


# ---- overrides ----------------------------------------------------------------
def _m4_content_filter(db):
    # Domain and user Content Filter records (the server's are settings).
    # kind: domain (scope a local domain) or user (scope a local address).
    db.execute("""CREATE TABLE IF NOT EXISTS antispam_content_filter (
        kind TEXT NOT NULL, scope TEXT NOT NULL,
        active INTEGER NOT NULL, default_filter INTEGER NOT NULL, custom_filter INTEGER NOT NULL,
        heuristic INTEGER NOT NULL, level TEXT NOT NULL, action TEXT NOT NULL,
        tag_subject INTEGER NOT NULL, changed REAL NOT NULL, PRIMARY KEY (kind, scope))""")


MIGRATIONS = [(4, _m4_content_filter)]

_COLUMNS = ("kind, scope, active, default_filter, custom_filter, heuristic, level, action, "
            "tag_subject")


def _from_row(row) -> FilterSettings | None:
    """A stored record, validated as if typed in: a row that does not parse
    (written by hand, or by another firmware) is left out, logged, and the
    next level decides."""
    kind, scope, *values = row
    try:
        if kind not in (DOMAIN, USER) or not isinstance(scope, str) or not scope:
            raise Invalid("unknown scope")
        parsed = {ATTRIBUTE[name]: _TYPES[SETTING_KEY[name]].parse(value)
                  for name, value in zip(NAMES, values)}
    except (Invalid, TypeError, ValueError) as error:
        log.warning("content filter record %r of %r ignored: %s", kind, scope, error)
        return None
    return FilterSettings(scope=_scope_name(kind, scope), **parsed)


def overrides(store) -> dict:
    """{(kind, scope): FilterSettings} of every domain and user record."""
    found = {}
    for row in store.db.execute(f"SELECT {_COLUMNS} FROM antispam_content_filter"):
        record = _from_row(row)
        if record is not None:
            found[(row[0], row[1])] = record
    return found


class Records:
    """The server record and the overrides of one settings generation."""

    def __init__(self, server: FilterSettings, by_scope: dict):
        self.server = server
        self.by_scope = by_scope
        self._users = {}   # the recipient key -> FilterSettings, filled as asked

    def for_recipient(self, recipient: str) -> FilterSettings:
        address = addresses.parse(recipient or "")
        domain = address.domain.rstrip(".")
        user = f"{address.local.lower()}@{domain}" if domain else address.local.lower()
        found = self._users.get(user)
        if found is None:
            found = (self.by_scope.get((USER, user)) or self.by_scope.get((DOMAIN, domain)) or
                     self.server)
            if len(self._users) < 10_000:   # hostile envelopes must not grow it without end
                self._users[user] = found
        return found


_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def records(store, settings) -> Records:
    """The records for `settings`, read again when its generation moves
    (every change here moves it). Settings without a generation (a plain
    mapping) are read afresh each time."""
    generation = getattr(settings, "generation", None)
    if generation is not None:
        with _cache_lock:
            cached = _cache.get(store)
        if cached is not None and cached[0] == generation:
            return cached[1]
    made = Records(server_settings(settings), overrides(store))
    if generation is not None:
        with _cache_lock:
            _cache[store] = (generation, made)
    return made


def for_recipient(store, settings, recipient: str) -> FilterSettings:
    return records(store, settings).for_recipient(recipient)


def for_recipients(store, settings, recipients) -> FilterSettings:
    """The record for a transaction's recipients. Untrusted inbound mail
    has one record for all of them (the rcpt check splits the others), so
    the first recipient's is theirs; with none, the server's."""
    table = records(store, settings)
    for recipient in recipients or ():
        return table.for_recipient(recipient)
    return table.server


# ---- changes ------------------------------------------------------------------
def scope_of(store, domain: str | None = None, user: str | None = None,
             settings=None) -> tuple[str, str]:
    """(kind, scope) for a change: the server, a local domain or a local
    address (see lists.resolve_scope)."""
    try:
        return resolve_scope(store, domain, user, settings)
    except ListError as error:
        raise FilterError(str(error)) from None


def record(store, kind: str, scope: str, settings=None) -> FilterSettings | None:
    """The scope's own record, None when it has none (the server always has one)."""
    settings = settings if settings is not None else store.snapshot()
    if kind == SERVER:
        return server_settings(settings)
    row = store.db.execute(f"SELECT {_COLUMNS} FROM antispam_content_filter "
                           "WHERE kind = ? AND scope = ?", [kind, scope]).fetchone()
    return _from_row(row) if row is not None else None


def effective(store, kind: str, scope: str, settings=None) -> FilterSettings:
    """The record that applies to the scope: its own, else the next level's."""
    settings = settings if settings is not None else store.snapshot()
    own = record(store, kind, scope, settings)
    if own is not None:
        return own
    if kind == USER:
        return effective(store, DOMAIN, scope.rpartition("@")[2], settings)
    return server_settings(settings)


def save(store, raw: dict, *, domain: str | None = None, user: str | None = None,
         actor: str = "system") -> FilterSettings:
    """Change fields of a scope's record. A domain or user without a record
    gets one, starting from what applied to it until now, so that the
    record then holds all fields (it replaces the levels above it whole)."""
    kind, scope = scope_of(store, domain, user)
    settings = store.snapshot()
    base = effective(store, kind, scope, settings)
    made = replace(parse_values(raw, base), scope=_scope_name(kind, scope))
    if kind == SERVER:
        changes = {SETTING_KEY[name]: value for name, value in made.values().items()
                   if value != base.values()[name]}
        if changes:
            try:
                store.set_many(changes, actor)
            except ValueError as error:
                raise FilterError(str(error)) from None
        return made
    values = made.values()
    with transaction(store.db):
        store.db.execute(
            f"INSERT OR REPLACE INTO antispam_content_filter({_COLUMNS}, changed) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [kind, scope] + [int(v) if isinstance(v, bool) else v for v in values.values()] +
            [time.time()])
        store.audit(actor, f"set the content filter of {made.scope}: " +
                    ", ".join(f"{name}={_render(value)}" for name, value in values.items()))
        store._bump_generation()
    return made


def clear(store, *, domain: str | None = None, user: str | None = None,
          actor: str = "system") -> FilterSettings:
    """Remove a domain's or user's record; returns what applies to it now.
    A domain no longer local still names its record, so it can be removed."""
    try:
        kind, scope = named_scope(store, domain, user)
    except ListError as error:
        raise FilterError(str(error)) from None
    if kind == SERVER:
        raise FilterError("the server (All Domains) record cannot be cleared; "
                          "set its fields instead")
    with transaction(store.db):
        if store.db.execute("DELETE FROM antispam_content_filter WHERE kind = ? AND scope = ?",
                            [kind, scope]).rowcount == 0:
            raise FilterError(f"{kind} {scope} has no content filter record of its own")
        store.audit(actor, f"clear the content filter of {kind} {scope}")
        store._bump_generation()
    return effective(store, kind, scope)


def scoped_records(store, kind: str | None = None) -> list[tuple[str, str, FilterSettings]]:
    """[(kind, scope, record)] of the domain and user records: domains first."""
    found = [(k, s, r) for (k, s), r in overrides(store).items() if kind in (None, k)]
    return sorted(found, key=lambda item: (item[0] != DOMAIN, item[1]))


def _render(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


# ---- checks -------------------------------------------------------------------
SPLIT_TEXT = ("recipients with different spam filter settings: send this one in another "
              "transaction")


class SplitCheck:
    """RCPT: one Content Filter record per transaction (see the module docstring)."""

    def __init__(self, store):
        self.store = store

    def __call__(self, ctx: Context):
        if ctx.may_relay or not ctx.recipients:
            return None
        table = records(self.store, ctx.settings)
        first = table.for_recipient(ctx.recipients[0])
        this = table.for_recipient(ctx.recipient)
        if this.filtering == first.filtering:
            return None
        ctx.count_result(SPLIT_CHECK_NAME, "deferred")
        log.info("%s: <%s> deferred: its content filter (%s) differs from that of <%s> (%s)",
                 ctx.client_ip, ctx.recipient, this.scope, ctx.recipients[0], first.scope)
        return tempfail("4.5.3", SPLIT_TEXT, 452)


class PolicyCheck:
    """DATA: the thresholds and action of the recipients' record, for the
    scoring at the end of DATA. Runs before the content layers' checks."""

    def __init__(self, store):
        self.store = store

    def __call__(self, ctx: Context):
        if ctx.may_relay or ctx.whitelisted:
            return None
        found = for_recipients(self.store, ctx.settings, ctx.recipients)
        if found.active:
            ctx.spam_policy = found.policy()
        return None


def policy_checks(store) -> list[Check]:
    # A record that cannot be read (a locked database) must not defer all
    # inbound mail: the split then lets the recipient through, and the
    # message is scored by the email.spam_* thresholds.
    return [Check(SPLIT_CHECK_NAME, "rcpt", SplitCheck(store), order=Order.CONTENT,
                  on_error="skip"),
            Check(CHECK_NAME, "data", PolicyCheck(store), order=Order.CONTENT, on_error="skip")]


# ---- command line -------------------------------------------------------------
def _describe(found: FilterSettings, own: bool) -> str:
    tag, high = found.thresholds
    lines = [f"Content Filter of {found.scope}" +
             ("" if own else " (no record of its own: this one applies)")]
    for name, value in found.values().items():
        lines.append(f"  {name:<15} {_render(value)}")
    lines.append(f"  thresholds      tag from {tag:g}, " +
                 (f"{found.action} from {high:g}" if found.action != MARK else "no higher action") +
                 ("" if found.active else " (not applied: the filter is off)"))
    return "\n".join(lines)


def _store(ctx):
    store = ctx.obj.store
    if not is_licensed(store):
        click.echo("note: the Anti-Spam SoftPak is not licensed on this box: the Content Filter "
                   "records are kept but filter nothing until a key is activated", err=True)
    return store


def _scope_options(command):
    command = click.option("--user", "user", metavar="U",
                           help="User level: mail to this local user (name or address).")(command)
    return click.option("--domain", "domain", metavar="D",
                        help="Domain level: mail to this local domain.")(command)


@click.group("filter")
def filter_group():
    """Anti-Spam > Content Filter: the record of the server, a domain or a user.

    A user's record replaces the domain's, which replaces the server's
    (whole records). Fields: content_filter, default_filter, custom_filter,
    heuristic (on/off), level (low/medium/high), action
    (mark/quarantine/reject), tag_subject (on/off)."""


@filter_group.command("show")
@_scope_options
@click.pass_context
def filter_show(ctx, domain, user):
    """The record that applies to the server, --domain D or --user U."""
    if domain and user:
        fail("--domain and --user exclude each other: give one, or neither for the server")
    store = _store(ctx)
    with reported(FilterError):
        kind, scope = scope_of(store, domain, user)
        own = record(store, kind, scope)
        click.echo(_describe(own or effective(store, kind, scope), own is not None))
        if kind == SERVER:
            for _, _, other in scoped_records(store):
                click.echo(f"  overridden for {other.scope}")


@filter_group.command("set")
@_scope_options
@click.argument("assignments", nargs=-1, required=True, metavar="NAME=VALUE...")
@click.pass_context
def filter_set(ctx, domain, user, assignments):
    """Set fields, e.g. content_filter=on level=high action=quarantine."""
    if domain and user:
        fail("--domain and --user exclude each other: give one, or neither for the server")
    raw = {}
    for item in assignments:
        name, equals, value = item.partition("=")
        if not equals:
            fail(f"'{item}': give NAME=VALUE (names: {', '.join(NAMES)})")
        raw[name.strip().lower()] = value.strip()
    store = _store(ctx)
    with reported(FilterError):
        made = save(store, raw, domain=domain, user=user, actor="cli")
    click.echo(_describe(made, True))


@filter_group.command("clear")
@_scope_options
@click.pass_context
def filter_clear(ctx, domain, user):
    """Remove the record of --domain D or --user U: the next level's applies."""
    if bool(domain) == bool(user):
        fail("give --domain D or --user U (the server record cannot be cleared)")
    store = _store(ctx)
    with reported(FilterError):
        now = clear(store, domain=domain, user=user, actor="cli")
    click.echo(f"cleared; the record of {now.scope} applies now")


COMMANDS = [filter_group]
