"""Per-connection costs of aiosmtpd that a busy gateway cannot afford.

aiosmtpd builds its table of AUTH mechanisms on every connection with
inspect.getmembers() over ~200 attributes, and inspects the EHLO hook's
signature each time; that was a fifth of smtpd's CPU under load. It also
sanitizes every command line for a debug log call that logs nothing. Its tables
of commands and handler hooks come from dir() of the connection and of the
handler, every time too (another tenth). The same answers are computed once
per class here. The substitutes are given to the aiosmtpd.smtp module only,
and return exactly what its uses need (the auth_* members, the hook's
signature, and the smtp_* and handle_* names)."""

from __future__ import annotations

import functools
import inspect
import logging

import aiosmtpd.smtp


@functools.cache
def _auth_names(cls) -> tuple:
    return tuple(name for name in dir(cls) if name.startswith("auth_"))


@functools.cache
def _bound_signature_of(function):
    # A bound method's signature leaves out "self".
    full = inspect.signature(function)
    return full.replace(parameters=list(full.parameters.values())[1:])


class _CachedInspect:
    """Stands in for the inspect module inside aiosmtpd.smtp."""

    def __getattr__(self, name):
        return getattr(inspect, name)

    @staticmethod
    def getmembers(obj, predicate=None):
        # aiosmtpd keeps only the members whose names start with "auth_".
        members = [(name, getattr(obj, name)) for name in _auth_names(type(obj))]
        if predicate is not None:
            members = [(n, v) for n, v in members if predicate(v)]
        return members

    @staticmethod
    def signature(callable_, **kwargs):
        function = getattr(callable_, "__func__", None)
        if function is None or kwargs:
            return inspect.signature(callable_, **kwargs)
        return _bound_signature_of(function)


# The prefixes aiosmtpd's __init__ looks for in dir(); other names are never used.
_DIR_PREFIXES = ("smtp_", "handle_")


@functools.cache
def _class_names(cls) -> tuple:
    return tuple(name for name in dir(cls) if name.startswith(_DIR_PREFIXES))


def cached_dir(obj) -> list:
    """dir(obj) as far as aiosmtpd reads it: the class's names with the
    prefixes it filters on, and the instance's own attributes."""
    names = set(_class_names(type(obj)))
    names.update(getattr(obj, "__dict__", ()))
    return sorted(names)


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_sanitized_log = aiosmtpd.smtp.sanitized_log


def sanitized_log(func, msg, *args, **kwargs):
    """aiosmtpd's sanitized_log, which first asks whether the logger would
    write anything at all."""
    logger, level = getattr(func, "__self__", None), _LEVELS.get(getattr(func, "__name__", ""))
    if isinstance(logger, logging.Logger) and level is not None \
            and not logger.isEnabledFor(level):
        return
    _sanitized_log(func, msg, *args, **kwargs)


def install():
    aiosmtpd.smtp.sanitized_log = sanitized_log
    aiosmtpd.smtp.inspect = _CachedInspect()
    # A module global shadows the builtin for the code of that module only.
    aiosmtpd.smtp.dir = cached_dir
