"""The tests' own tool check: a missing program fails the test and names its
Debian package, and `make deps` installs every package it can name."""

import re
from pathlib import Path

import pytest

from tests.support import tools

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"


def makefile_packages() -> set[str]:
    text = MAKEFILE.read_text().replace("\\\n", " ")
    lists = dict(re.findall(r"^(\w*APT_PACKAGES) := (.*)$", text, re.MULTILINE))
    words = " ".join(lists.values()).split()
    return {word for word in words if not word.startswith("$(")}


def test_every_package_the_check_names_is_installed_by_make_deps():
    named = {tool.package for tool in tools.TOOLS.values()}
    assert named - makefile_packages() == set()


def test_swaks_tls_needs_its_recommended_perl_module_named_in_the_makefile():
    assert tools.TOOLS["swaks TLS support"].package == "libnet-ssleay-perl"
    assert "libnet-ssleay-perl" in makefile_packages()


def test_a_missing_tool_fails_and_names_the_package(monkeypatch):
    monkeypatch.setitem(tools.TOOLS, "frobnicator",
                        tools.Tool("frobnicator", "frob-utils", "frobnicator-that-is-not-there"))
    monkeypatch.setitem(tools.TOOLS, "broken probe",
                        tools.Tool("broken probe", "libbroken-perl", probe=("false",)))
    with pytest.raises(pytest.fail.Exception) as failed:
        tools.require("frobnicator", "broken probe")
    assert str(failed.value) == ("missing: frobnicator (Debian package frob-utils); broken probe "
                                 "(Debian package libbroken-perl); `make deps` installs them")


def test_a_present_tool_passes():
    tools.require("openssl")
