import os
import random
import re

import pytest

from firmware.licensing import textform
from firmware.licensing.errors import MalformedKey


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 64, 107, 200])
def test_round_trip(size):
    raw = os.urandom(size)
    assert textform.decode(textform.encode(raw)) == raw
    assert textform.decode(textform.encode(raw, wrap=True)) == raw


def test_text_form_is_grouped_with_prefix():
    text = textform.encode(os.urandom(100))
    prefix, *groups = text.split("-")
    assert prefix == "GATEBOX"
    assert all(len(g) == 5 for g in groups[:-1]) and 1 <= len(groups[-1]) <= 5
    assert re.fullmatch(r"[0-9A-Z*~$=-]+", text)


def test_survives_rewrapping_lowercase_whitespace_and_quoting():
    raw = os.urandom(107)
    compact = textform.encode(raw)
    body = compact.replace("-", "")
    mangled = [
        compact.lower(),
        "  " + " ".join(compact[i:i + 7] for i in range(0, len(compact), 7)) + "\n",
        "\r\n".join(body[i:i + 13] for i in range(0, len(body), 13)),
        "\n".join("> " + line for line in textform.encode(raw, wrap=True).splitlines()),
        "\t".join(compact.split("-")).swapcase(),
    ]
    for text in mangled:
        assert textform.decode(text) == raw, text


def test_look_alike_letters_read_as_digits():
    raw = bytes(range(40))
    text = textform.encode(raw)
    head, body = text[:8], text[8:]
    assert "0" in body and "1" in body
    assert textform.decode(head + body.replace("0", "O").replace("1", "l")) == raw


def test_every_single_character_substitution_is_malformed():
    raw = os.urandom(107)
    text = textform.encode(raw)
    rng = random.Random(7)
    positions = [i for i, ch in enumerate(text) if i >= len("GATEBOX-") and ch != "-"]
    for position in positions:
        original = text[position]
        replacement = rng.choice([c for c in textform.ALPHABET if c != original])
        flipped = text[:position] + replacement + text[position + 1:]
        with pytest.raises(MalformedKey):
            textform.decode(flipped)


def test_swapped_neighbours_and_lost_characters_are_malformed():
    text = textform.encode(os.urandom(107))
    body = text[len("GATEBOX-"):].replace("-", "")
    swaps = [i for i in range(len(body) - 2) if body[i] != body[i + 1]][:40]
    for i in swaps:
        swapped = body[:i] + body[i + 1] + body[i] + body[i + 2:]
        with pytest.raises(MalformedKey):
            textform.decode("GATEBOX-" + swapped)
    with pytest.raises(MalformedKey):
        textform.decode("GATEBOX-" + body[:-2] + body[-1])


@pytest.mark.parametrize("text, reason", [
    ("", "starts with"),
    ("hello world", "starts with"),
    ("GATEBOX-", "too short"),
    ("GATEBOX-ABCDU-12345", "not used in license keys"),
])
def test_garbage_is_malformed_with_a_reason(text, reason):
    with pytest.raises(MalformedKey, match=reason):
        textform.decode(text)
