"""Installs a checked bundle into the inactive slot with `rauc install`
(the RAUC service writes the slot and makes it the one to boot next)."""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
from pathlib import Path
from typing import Callable

from . import errors, progress
from .bundle_check import BundleInfo, check_bundle
from .runtime import Runtime
from .slot_state import booted_slot, configured_slots, record_version
from .versions import running_version

Progress = Callable[[int, str], None]


def install(runtime: Runtime, path, *, allow_downgrade: bool = False,
            on_progress: Progress | None = None) -> BundleInfo:
    info = check_bundle(runtime, path, allow_downgrade=allow_downgrade)
    with _only_one_install(runtime):
        target = _inactive_slot(runtime)
        progress.report(runtime, "installing", 0, "Starting", version=info.version, slot=target)
        last_error = _run_rauc_install(runtime, Path(path).resolve(), info, target, on_progress)
        if last_error is not None:
            progress.report(runtime, "failed", 100, last_error, version=info.version, slot=target)
            raise errors.InstallFailed(f"Installing version {info.version} failed: {last_error}")
        if target:
            record_version(runtime, target, info.version)
        # The slot left behind is the fallback; say which version it holds,
        # which RAUC knows only of slots it wrote itself.
        booted = booted_slot(runtime)
        if booted:
            record_version(runtime, booted, running_version(runtime.version_file))
        progress.report(runtime, "installed", 100,
                        f"Version {info.version} is installed in slot {target}; reboot to run it.",
                        version=info.version, slot=target)
    return info


def _run_rauc_install(runtime, path, info, target, on_progress) -> str | None:
    """Runs rauc install, relaying its progress; returns the error or None."""
    command = [runtime.rauc, "--conf", str(runtime.system_conf), "install", str(path)]
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1)
    except FileNotFoundError:
        return "the update engine (rauc) is not installed"
    last_error, lines = None, []
    for line in process.stdout:
        lines.append(line.strip())
        if line.startswith("LastError:"):
            last_error = line.split(":", 1)[1].strip()
            if "Pre-install handler" in last_error:
                last_error = ("the update engine refused the bundle: it is older than the "
                              "running firmware")
        step = progress.parse_line(line)
        if step:
            progress.report(runtime, "installing", step[0], step[1], version=info.version,
                            slot=target)
            if on_progress:
                on_progress(*step)
    if process.wait() != 0:
        meaningful = [line for line in lines if line and "rauc-Message" not in line]
        return last_error or (meaningful[-1] if meaningful else f"rauc exited {process.returncode}")
    return None


def _inactive_slot(runtime: Runtime) -> str | None:
    booted = booted_slot(runtime)
    others = [name for name in configured_slots(runtime) if name != booted]
    return others[0] if booted and others else None


@contextlib.contextmanager
def _only_one_install(runtime: Runtime):
    runtime.firmware_dir.mkdir(parents=True, exist_ok=True)
    with open(runtime.firmware_dir / "install.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise errors.InstallBusy("Another firmware installation is running; "
                                     "wait for it to finish.") from None
        yield
