"""Bundle checks with real bundles: made by `rauc bundle`, signed by CAs made
with openssl for this test run, read back with `rauc info`. Every refusal has
its own message and leaves every file as it was."""

import shutil

import pytest

from firmware.system.update import (BundleTampered, BundleUnreadable, NotNewer, UntrustedSigner,
                                    WrongArchitecture, check_bundle, install)
from tests.support.bundles import (bad_bundles, bundles, flip_byte, signing,  # noqa: F401 (fixtures)
                                   update_box)


def refusal(box, path, **options):
    before = box.snapshot()
    with pytest.raises(Exception) as caught:
        install(box.runtime(), path, **options)
    assert box.snapshot() == before, "a refused bundle changed a file"
    return caught.value


def test_a_newer_bundle_signed_by_the_box_key_is_accepted(update_box, bundles):
    before = update_box.snapshot()
    info = check_bundle(update_box.runtime(), bundles["newer"])
    assert (info.version, info.compatible, info.bundle_format) == ("1.1.0", "gatebox-x86_64", "verity")
    assert "gatebox test" in info.signer
    assert update_box.snapshot() == before


def test_a_changed_payload_byte_is_refused_as_tampered(update_box, bad_bundles):
    error = refusal(update_box, bad_bundles["tampered"])
    assert isinstance(error, BundleTampered)
    assert "changed after it was signed" in str(error)


def test_a_changed_signature_byte_is_refused_as_tampered(update_box, bundles, tmp_path):
    tampered = tmp_path / "tampered-signature.raucb"
    shutil.copy(bundles["newer"], tampered)
    flip_byte(tampered, tampered.stat().st_size - 300)
    error = refusal(update_box, tampered)
    assert isinstance(error, BundleTampered), error


@pytest.mark.parametrize("keep", [0, 100, 20000, -100])
def test_a_truncated_bundle_is_refused_as_incomplete(update_box, bundles, tmp_path, keep):
    whole = bundles["newer"].read_bytes()
    cut = tmp_path / "cut.raucb"
    cut.write_bytes(whole[:keep] if keep >= 0 else whole[:keep])
    error = refusal(update_box, cut)
    assert isinstance(error, BundleUnreadable), error
    assert "not a complete update bundle" in str(error)


def test_a_bundle_signed_by_another_ca_is_refused(update_box, bundles):
    error = refusal(update_box, bundles["stranger"])
    assert isinstance(error, UntrustedSigner)
    assert "not signed by a key this box trusts" in str(error)


def test_a_bundle_for_another_architecture_is_refused(update_box, bundles):
    error = refusal(update_box, bundles["aarch64"])
    assert isinstance(error, WrongArchitecture)
    assert str(error).startswith("This bundle is for gatebox-aarch64, this box is gatebox-x86_64")


@pytest.mark.parametrize("which, word", [("older", "older than"), ("same", "the same as")])
def test_an_older_or_same_version_is_refused_unless_asked_for(update_box, bundles, which, word):
    error = refusal(update_box, bundles[which])
    assert isinstance(error, NotNewer)
    assert f"is {word} the running firmware 1.0.0" in str(error)
    assert check_bundle(update_box.runtime(), bundles[which], allow_downgrade=True).version


def test_every_refusal_has_its_own_message(update_box, bad_bundles):
    messages = {str(refusal(update_box, path)).split(":")[0][:40] for path in bad_bundles.values()}
    assert len(messages) == len(bad_bundles), messages
