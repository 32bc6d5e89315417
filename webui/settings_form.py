"""Settings forms generated from the one settings declaration
(firmware.config.schema): a page names a menu path and gets a field for every
setting declared under it, checked by the same rules as the CLI and daemons."""

from __future__ import annotations

from dataclasses import dataclass

from flask_wtf import FlaskForm
from wtforms import (BooleanField, PasswordField, SelectField, SelectMultipleField, StringField,
                     TextAreaField)
from wtforms.widgets import CheckboxInput, ListWidget

from firmware.config import SettingError, declarations
from firmware.config.types import DAYS, Bool, Choice, Days, NotYet, Secret
from firmware import plugins
from firmware.plugins import softpak_name

try:  # WTForms 3.3 wants choice objects and will stop taking tuples
    from wtforms.fields.choices import SelectChoice as _Choice
except ImportError:  # older WTForms takes (value, label, render_kw)
    def _Choice(value, label, render_kw=None):
        return (value, label, render_kw or {})

SECRET_UNCHANGED_HINT = "leave empty to keep the stored password"


class CheckboxList(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


@dataclass
class FieldInfo:
    """What the template needs besides the WTForms field."""
    key: str
    setting: object
    name: str            # attribute name of the field on the form
    visible_when: tuple | None
    locked_choices: dict  # choice value -> SoftPak it needs, when not licensed
    visible: bool = True  # with the values shown; the page script updates it as they change
    not_yet: tuple = ()   # labels of the choices this firmware does not have yet
    runs_as: str = ""     # when the stored value is one of them: the label of what runs instead
    stored_label: str = ""


def settings_for(menu: str) -> list:
    return [s for s in declarations().values() if s.menu == menu]


def field_name(key: str) -> str:
    # WTForms attribute names cannot hold dots; the HTML name/id follow it.
    return key.replace(".", "__")


def _data_choices(store, key: str, stored) -> list | None:
    """Choices a SoftPak fills from the box's data, the stored value kept
    (marked) even when it is no longer among them."""
    batches = [b for b in plugins.active_plugin_manager(store).hook.gatebox_setting_choices(
        store=store, key=key) if b is not None]
    if not batches:
        return None
    choices = [("", "(choose)")] + [c for batch in batches for c in batch]
    if stored and stored not in {value for value, _ in choices}:
        choices.append((stored, f"{stored} (no longer offered)"))
    return choices


def _field_for(setting, active_softpaks: set, data_choices: list | None = None):
    kind = setting.type
    label = setting.label
    if data_choices is not None:
        return SelectField(label, choices=[_Choice(v, t) for v, t in data_choices],
                           validate_choice=False)
    if isinstance(kind, Bool):
        return BooleanField(label)
    if isinstance(kind, Secret):
        return PasswordField(label, render_kw={"autocomplete": "new-password",
                                               "placeholder": SECRET_UNCHANGED_HINT})
    if isinstance(kind, NotYet):
        # Not posted when disabled: the stored value (the default) stands.
        return StringField(label, render_kw={"disabled": True})
    if isinstance(kind, Choice):
        choices = []
        for value, text in kind.choices:
            needed = setting.requires.get(value)
            if value in kind.not_yet:
                choices.append(_Choice(value, f"{text} (not in this firmware yet)",
                                       render_kw={"disabled": True}))
                continue
            if needed and needed not in active_softpaks:
                text = f"{text} (needs the {needed_name(needed)} SoftPak)"
            choices.append(_Choice(value, text))
        return SelectField(label, choices=choices, validate_choice=False)
    if getattr(kind, "multiline", False):
        return TextAreaField(label, render_kw={"rows": 6, "spellcheck": "false"})
    if isinstance(kind, Days):
        return CheckboxList(label, choices=[_Choice(d, d.capitalize()) for d in DAYS],
                            validate_choice=False)
    return StringField(label)


def needed_name(softpak_id: str) -> str:
    return softpak_name(softpak_id)


def build(menu: str, store, formdata=None, base=FlaskForm):
    """(form, [FieldInfo]) for the settings under `menu`, filled from the store
    or, after a POST, from what the administrator typed."""
    return build_for(settings_for(menu), store, formdata, base)


def build_for(settings: list, store, formdata=None, base=FlaskForm):
    """The same for a chosen list of settings (first-boot setup asks a few)."""
    active = store.active_softpaks()
    fields, infos = {}, []
    values = store.all()
    for setting in settings:
        name = field_name(setting.key)
        fields[name] = _field_for(setting, active,
                                  _data_choices(store, setting.key, values[setting.key]))
        not_yet = getattr(setting.type, "not_yet", ())
        locked = {v: s for v, s in setting.requires.items() if s not in active and v not in not_yet}
        infos.append(FieldInfo(setting.key, setting, name, setting.visible_when, locked,
                               not_yet=tuple(setting.type.label(v) for v in not_yet),
                               runs_as=_runs_as(setting, values[setting.key]),
                               stored_label=_label_of(setting, values[setting.key])))
    form_class = type("SettingsForm", (base,), fields)
    data = {field_name(s.key): _form_value(s, values[s.key]) for s in settings}
    form = form_class(formdata=formdata, data=data)
    typed = {info.key: getattr(form, info.name).data for info in infos}
    for info in infos:
        info.visible = is_visible(info.visible_when, typed, values)
    return form, infos


def _runs_as(setting, stored) -> str:
    """For a stored value this firmware does not have (written by one that
    offered it): the label of the value the box runs as instead."""
    if stored not in getattr(setting.type, "not_yet", ()):
        return ""
    return setting.type.label(setting.type.runs_as)


def _label_of(setting, value) -> str:
    label = getattr(setting.type, "label", None)
    return label(value) if label else str(value)


def _form_value(setting, value):
    if isinstance(setting.type, Secret):
        return ""
    if isinstance(setting.type, Bool):
        return bool(value)
    if isinstance(setting.type, Days):
        return [d for d in str(value).split(",") if d]
    return setting.type.render(value)


def submitted_values(form, infos, current: dict) -> dict:
    """key -> raw text for the store, for the fields visible with the submitted
    values. A hidden field keeps its stored value; an empty password field
    means "unchanged"."""
    typed = {info.key: getattr(form, info.name).data for info in infos}
    raw = {}
    for info in infos:
        if not is_visible(info.visible_when, typed, current):
            continue
        value = typed[info.key]
        if isinstance(info.setting.type, Secret) and not value:
            continue
        if isinstance(info.setting.type, NotYet):
            continue
        if isinstance(info.setting.type, Days):
            value = ",".join(value or [])
        elif isinstance(info.setting.type, Bool):
            value = "on" if value else "off"
        raw[info.key] = "" if value is None else value
    return raw


def is_visible(visible_when, typed: dict, current: dict) -> bool:
    if not visible_when:
        return True
    other, values = visible_when
    return (typed.get(other) if other in typed else current.get(other)) in values


def apply(form, infos, store, actor: str):
    """Validate every field with the store's rules; on success write them all
    in one transaction. Returns the list of changes, or None when a field was
    refused (its rule is then attached to the field)."""
    current = store.all()
    raw = submitted_values(form, infos, current)
    names = {info.key: info.name for info in infos}
    active = store.active_softpaks()
    failed = False
    for key, value in raw.items():
        try:
            store.validate(key, value, active)
        except SettingError as error:
            getattr(form, names[key]).errors = [error.rule]
            failed = True
    if failed:
        return None
    try:
        return store.set_many(raw, actor=actor)
    except SettingError as error:
        # A rule across settings (e.g. Domain Name '*' outside Relay mode).
        target = names.get(error.key)
        if target:
            getattr(form, target).errors = [error.rule]
        else:
            form.form_errors.append(str(error))
        return None
