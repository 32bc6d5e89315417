"""Why an update, a rollback or a bundle was refused. Each refusal has its
own class so the CLI and the web UI can say exactly what was wrong."""

from __future__ import annotations


class UpdateError(Exception):
    """Base of every refusal; str() is the message for the administrator."""


class UpdatesUnavailable(UpdateError):
    """This system has no update engine (a development machine, not a box)."""


class BundleUnreadable(UpdateError):
    """Not a bundle at all, or cut short (an interrupted upload or copy)."""


class BundleTampered(UpdateError):
    """The signature or the signed content does not match: changed after signing."""


class UntrustedSigner(UpdateError):
    """Signed, but not by a key this box trusts."""


class WrongArchitecture(UpdateError):
    """Made for another kind of box (compatible string mismatch)."""


class NotNewer(UpdateError):
    """Older than or the same as the running firmware (downgrades need asking)."""


class InstallFailed(UpdateError):
    """The engine refused or failed while writing the slot."""


class InstallBusy(UpdateError):
    """Another installation is running."""


class RollbackRefused(UpdateError):
    """The other slot holds nothing known to boot."""
