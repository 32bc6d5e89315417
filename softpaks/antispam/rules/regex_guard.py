"""Whether an administrator's regular expression is safe to run on hostile
mail. Python's re backtracks and cannot be interrupted, so a pattern such as
(a+)+$ or .*.*x can hold smtpd for minutes on a crafted line. A pattern is
refused when saved if
- it is longer than MAX_PATTERN characters or does not compile;
- it uses a backreference (\\1): matching those can be exponential;
- a group repeated without a small bound holds a repetition or
  alternatives ((a+)+, (a|b)*): the nested kinds that backtrack
  exponentially ((\\d{1,3}\\.){3} is fine);
- more than MAX_DEGREE open-ended repetitions can backtrack against each
  other (.*.*.*.*x);
- it is slow on probe lines of LINE characters made of what the pattern
  itself looks for (the polynomial kinds, .*.*.*x).
At run time every text is matched in pieces of at most LINE characters
(custom.py), so a pattern that passed the probe costs bounded time per
piece."""

from __future__ import annotations

import re
import time

try:
    from re import _constants as sre_constants, _parser as sre_parse
except ImportError:  # Python before 3.11
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

MAX_PATTERN = 256
LINE = 1000
SMALL_BOUND = 10
MAX_DEGREE = 3
# A probe line of LINE characters taking over PROBE_SECONDS means the
# pattern backtracks badly; shorter probes first (see _slow).
PROBE_SECONDS = 0.01
PROBE_FLOOR = 0.002
PROBE_LENGTHS = (100, 300, LINE)
PROBE_TRIES = 3

_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT,
            getattr(sre_constants, "POSSESSIVE_REPEAT", sre_constants.MAX_REPEAT)}
_SINGLE = {sre_constants.LITERAL, sre_constants.NOT_LITERAL, sre_constants.ANY,
           sre_constants.IN, sre_constants.CATEGORY}
_BACKREFERENCES = {sre_constants.GROUPREF, sre_constants.GROUPREF_EXISTS}
_ATOMIC = getattr(sre_constants, "ATOMIC_GROUP", None)


class UnsafePattern(ValueError):
    """The text says why and what to write instead."""


def _children(op, av) -> list:
    """The sub-patterns of one parsed item."""
    if op in _REPEATS:
        return [av[2]]
    if op == sre_constants.SUBPATTERN:
        return [av[-1]]
    if op == sre_constants.BRANCH:
        return list(av[1])
    if op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
        return [av[1]]
    if _ATOMIC is not None and op == _ATOMIC:
        return [av]
    return []


def _has(items, wanted) -> bool:
    for op, av in items:
        if op in wanted or any(_has(child, wanted) for child in _children(op, av)):
            return True
    return False


def _literals(items, found: list) -> None:
    for op, av in items:
        if op == sre_constants.LITERAL:
            found.append(chr(av))
        elif op == sre_constants.IN:
            found += [chr(v) for o, v in av if o == sre_constants.LITERAL]
            found += [chr(v[0]) for o, v in av if o == sre_constants.RANGE]
        for child in _children(op, av):
            _literals(child, found)


def _degree(items, times: int = 1) -> int:
    """How many repetitions can backtrack against each other: a repeated
    single character or class counts once, each time its enclosing bounded
    groups may repeat. A match can cost up to LINE ** (degree + 1) steps."""
    degree = 0
    for op, av in items:
        if op in _BACKREFERENCES:
            raise UnsafePattern("backreferences (\\1, (?P=name)) are not allowed: matching them "
                                "can take exponential time")
        if op in _REPEATS:
            low, high, body = av
            if len(body) == 1 and body[0][0] in _SINGLE:
                degree += times if high > SMALL_BOUND else 0
            elif high > SMALL_BOUND:
                if _has(body, _REPEATS | {sre_constants.BRANCH}):
                    raise UnsafePattern(
                        "a repetition or alternatives inside a repeated group ((a+)+, "
                        "(a|b)*, ([a-z]+\\.)+) backtrack exponentially; repeat the group a "
                        "few times only ({1,4}) or write it without nesting")
                degree += times
            else:
                degree += _degree(body, times * max(1, high))
            continue
        for child in _children(op, av):
            degree += _degree(child, times)
    return degree


def probe_lines(parsed) -> list[str]:
    """Lines of what the pattern looks for, where backtracking is worst."""
    found: list[str] = []
    _literals(parsed, found)
    own = "".join(dict.fromkeys(found))[:64] or "a"
    return [own, "a", " ", "aA0 .@-_/:", own + "!"]


def _slow(compiled: re.Pattern, lines: list[str], length: int) -> bool:
    """Slower than a quadratic pattern may be: PROBE_SECONDS at LINE,
    scaled down for the shorter probes (with a floor for the clock's noise),
    so a bad pattern is caught on a short line before a long one hangs.
    The time is the thread's own CPU time, so waiting on a busy machine
    does not count, and a slow reading is taken again before it counts."""
    allowed = max(PROBE_FLOOR, PROBE_SECONDS * (length / LINE) ** 2)
    for sample in lines:
        line = (sample * (length // len(sample) + 1))[:length]
        if all(_seconds(compiled, line) > allowed for _ in range(PROBE_TRIES)):
            return True
    return False


def _seconds(compiled: re.Pattern, line: str) -> float:
    started = time.thread_time()
    compiled.search(line)
    return time.thread_time() - started


def compile_safe(pattern: str, flags: int = re.IGNORECASE) -> re.Pattern:
    """The compiled pattern, or UnsafePattern (a ValueError) saying why not."""
    if not pattern:
        raise UnsafePattern("give a pattern")
    if len(pattern) > MAX_PATTERN:
        raise UnsafePattern(f"a pattern is at most {MAX_PATTERN} characters")
    try:
        compiled = re.compile(pattern, flags)
        parsed = sre_parse.parse(pattern, flags)
    except (re.error, OverflowError, RecursionError) as error:
        raise UnsafePattern(f"not a regular expression: {error}") from None
    if _degree(parsed) > MAX_DEGREE:
        raise UnsafePattern(f"more than {MAX_DEGREE} open-ended repetitions (.*, +, {{2,}}) "
                            "that can backtrack against each other; bound some ({1,40}) or "
                            "use two rules")
    lines = probe_lines(parsed)
    if any(_slow(compiled, lines, length) for length in PROBE_LENGTHS):
        raise UnsafePattern("this pattern backtracks too much on long lines; anchor it, or "
                            "bound its repetitions ([a-z]{1,40} instead of .*)")
    return compiled


def pieces(text: str, limit: int, length: int = LINE, overlap: int = 200):
    """text[:limit] as overlapping pieces of at most `length` characters:
    lines, and long lines cut (a match longer than the overlap across a cut
    is not found)."""
    text = text[:limit]
    for line in text.splitlines():
        if len(line) <= length:
            yield line
            continue
        step = length - overlap
        for start in range(0, len(line) - overlap, step):
            yield line[start:start + length]
