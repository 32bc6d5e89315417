"""Firmware updates: signed RAUC bundles into the inactive A/B root slot,
the boot loader's view of the slots, rollback and reboot requests.

    check_bundle   is this file a bundle this box may install (nothing written)
    install        check, then write the inactive slot and boot it next
    status         running version and slot, the other slot, an abandoned update
    rollback       boot the other slot next, when it is known to boot
    request_reboot ask the root reboot unit to restart the box
"""

from __future__ import annotations

from .bundle_check import BundleInfo, check_bundle
from .errors import (BundleTampered, BundleUnreadable, InstallBusy, InstallFailed, NotNewer,
                     RollbackRefused, UntrustedSigner, UpdateError, UpdatesUnavailable,
                     WrongArchitecture)
from .install import install
from .rollback import request_reboot, rollback
from .runtime import Runtime
from .status import FirmwareStatus, status
from .versions import running_version

__all__ = ["BundleInfo", "check_bundle", "install", "status", "rollback", "request_reboot",
           "running_version", "Runtime", "FirmwareStatus", "UpdateError", "UpdatesUnavailable",
           "BundleUnreadable", "BundleTampered", "UntrustedSigner", "WrongArchitecture",
           "NotNewer", "InstallFailed", "InstallBusy", "RollbackRefused"]
