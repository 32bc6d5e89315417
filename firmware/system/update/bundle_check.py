"""Is this file an update bundle this box may install? Signature, integrity,
architecture and version are checked with `rauc info` and the payload's hash
tree; nothing is written, whatever the answer."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

from . import errors, verity
from .runtime import Runtime
from .versions import is_newer, running_version


@dataclasses.dataclass
class BundleInfo:
    path: Path
    compatible: str
    version: str
    bundle_format: str
    signer: str = ""


def check_bundle(runtime: Runtime, path, *, allow_downgrade: bool = False) -> BundleInfo:
    path = Path(path)
    if not path.is_file():
        raise errors.BundleUnreadable(f"{path.name}: no such file")
    manifest, details = _rauc_info(runtime, path)
    info = BundleInfo(path=path, compatible=manifest.get("compatible") or "",
                      version=manifest.get("version") or "",
                      bundle_format=details.get("Bundle Format", ""),
                      signer=details.get("signer", ""))
    if info.bundle_format not in ("verity", "plain"):
        # Unknown means unchecked payload: refuse rather than write it.
        raise errors.BundleUnreadable(f"Unknown bundle format {info.bundle_format!r}; "
                                      "nothing was installed.")
    box = runtime.compatible()
    if info.compatible != box:
        raise errors.WrongArchitecture(
            f"This bundle is for {info.compatible or 'an unknown system'}, "
            f"this box is {box}: nothing was installed.")
    running = running_version(runtime.version_file)
    if not allow_downgrade and not is_newer(info.version, running):
        word = "the same as" if info.version == running else "older than"
        raise errors.NotNewer(
            f"Version {info.version} is {word} the running firmware {running}; "
            "nothing was installed. Installing an older version must be asked for explicitly.")
    # Last: hashing the whole payload is the slow part (seconds on a small box).
    if info.bundle_format == "verity":
        try:
            verity.check_payload(path, details["Verity Salt"], details["Verity Hash"],
                                 int(details["Verity Size"]))
        except (KeyError, ValueError, verity.VerityMismatch) as error:
            raise errors.BundleTampered(
                f"The bundle's content was changed after it was signed ({error}); "
                "nothing was installed.") from None
    return info


def _rauc_info(runtime: Runtime, path: Path) -> tuple[dict, dict]:
    keyring = runtime.keyring_path()
    if keyring is None or not runtime.system_conf.exists():
        raise errors.UpdatesUnavailable(
            "This system has no update configuration (/etc/rauc/system.conf); "
            "firmware updates are installed on the box itself.")
    base = [runtime.rauc, "--conf", str(runtime.system_conf), "--keyring", str(keyring), "info"]
    try:
        as_json = subprocess.run(base + ["--output-format=json", str(path)],
                                 capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise errors.UpdatesUnavailable("The update engine (rauc) is not installed.") from None
    if as_json.returncode != 0:
        raise _refusal(as_json.stderr)
    # The text form is the one that shows the format, the verity parameters and the signer.
    as_text = subprocess.run(base + [str(path)], capture_output=True, text=True, timeout=600)
    return json.loads(as_json.stdout), _text_details(as_text.stdout, as_text.stderr)


def _text_details(stdout: str, stderr: str) -> dict:
    details = {key.strip(): value for key, value in
               re.findall(r"^\s*([A-Z][A-Za-z ]+):\s*'?([^'\n]*)'?\s*$", stdout, re.M)}
    signer = re.search(r"Verified (?:inline|detached) signature by '([^']*)'", stderr)
    if signer:
        details["signer"] = signer.group(1)
    return details


def _refusal(stderr: str) -> errors.UpdateError:
    lines = [line for line in stderr.splitlines() if "rauc-Message" not in line and line.strip()]
    detail = lines[-1].strip() if lines else "no answer from rauc"
    if "failed to load CA file" in stderr:
        return errors.UpdatesUnavailable(f"The box's update keyring is missing ({detail}).")
    if re.search(r"issuer certificate|self.signed|certificate is not trusted|untrusted|"
                 r"unable to verify|certificate has expired", stderr, re.I):
        return errors.UntrustedSigner(
            "The bundle is not signed by a key this box trusts; nothing was installed.")
    if re.search(r"verification failure|content verify error|no valid CMS|digest failure",
                 stderr, re.I):
        return errors.BundleTampered(
            "The bundle's signature does not match its content: it was changed after "
            "signing or damaged; nothing was installed.")
    if "Invalid bundle format" in stderr or "Failed to seek" in stderr or "too small" in stderr:
        return errors.BundleUnreadable(
            "This is not a complete update bundle (cut short in the upload or copy, or not a "
            f"bundle at all); nothing was installed. ({detail})")
    return errors.BundleUnreadable(f"The bundle could not be read: {detail}")
