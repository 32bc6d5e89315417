"""Per-connection costs of aiosmtpd that a busy gateway cannot afford.

aiosmtpd builds its table of AUTH mechanisms on every connection with
inspect.getmembers() over ~200 attributes, and inspects the EHLO hook's
signature each time; that was a fifth of smtpd's CPU under load. Its tables
of commands and handler hooks come from dir() of the connection and of the
handler, every time too (another tenth). The same answers are computed once
per class here. The substitutes are given to the aiosmtpd.smtp module only,
and return exactly what its uses need (the auth_* members, the hook's
signature, and the smtp_* and handle_* names)."""

from __future__ import annotations

import functools
import inspect

import aiosmtpd.smtp


@functools.cache
def _auth_names(cls) -> tuple:
    return tuple(name for name in dir(cls) if name.startswith("auth_"))


@functools.cache
def _signature_of(function):
    return inspect.signature(function)


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
        bound = _signature_of(function)
        # A bound method's signature leaves out "self".
        return bound.replace(parameters=list(bound.parameters.values())[1:])


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


def install():
    aiosmtpd.smtp.inspect = _CachedInspect()
    # A module global shadows the builtin for the code of that module only.
    aiosmtpd.smtp.dir = cached_dir
