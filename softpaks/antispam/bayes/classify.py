"""How spammy a message's tokens are: Robinson's per-token probability with
Fisher's chi-square combining, as SpamBayes computes them.

Each token's probability is its share of spam among the messages that held
it, moved towards X = 0.5 by an unknown-word strength S = 0.45 so a token
seen once or twice says little. Of the tokens at least 0.1 away from 0.5,
the 150 most extreme are combined: H and S are the chi-square tests of the
hypotheses "all ham" and "all spam"; the result (S - H + 1) / 2 runs from 0
(ham) to 1 (spam), near 0.5 when the evidence is weak or torn."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .store import BayesStore

UNKNOWN_STRENGTH = 0.45
UNKNOWN_PROB = 0.5
MIN_STRENGTH = 0.1
MAX_DISCRIMINATORS = 150
_LN2 = math.log(2)

# (upper bound of the probability, symbol, score), as SpamAssassin's BAYES_* rules.
BANDS = (
    (0.01, "BAYES_00", -1.9),
    (0.05, "BAYES_05", -1.0),
    (0.20, "BAYES_20", -0.5),
    (0.40, "BAYES_40", -0.1),
    (0.60, "BAYES_50", 0.0),
    (0.80, "BAYES_60", 1.0),
    (0.95, "BAYES_80", 2.0),
    (0.99, "BAYES_95", 3.0),
    (1.01, "BAYES_99", 3.5),
)


@dataclass(frozen=True)
class Verdict:
    probability: float
    symbol: str
    score: float
    clues: int            # tokens that counted
    known: int            # tokens the database knew


def band(probability: float) -> tuple[str, float]:
    for upper, symbol, score in BANDS:
        if probability < upper:
            return symbol, score
    return BANDS[-1][1], BANDS[-1][2]


def token_probability(spam: int, ham: int, nspam: int, nham: int) -> float:
    spam_ratio = min(spam / nspam, 1.0) if nspam else 0.0
    ham_ratio = min(ham / nham, 1.0) if nham else 0.0
    if spam_ratio + ham_ratio == 0:
        return UNKNOWN_PROB
    prob = spam_ratio / (spam_ratio + ham_ratio)
    n = spam + ham
    return (UNKNOWN_STRENGTH * UNKNOWN_PROB + n * prob) / (UNKNOWN_STRENGTH + n)


def chi2q(x2: float, freedom: int) -> float:
    """P(chisq >= x2) with an even number of degrees of freedom."""
    m = x2 / 2.0
    term = total = math.exp(-m)
    for i in range(1, freedom // 2):
        term *= m / i
        total += term
    return min(total, 1.0)


def combine(probabilities: list[float]) -> float:
    if not probabilities:
        return 0.5
    s = h = 1.0
    s_exp = h_exp = 0
    for prob in probabilities:
        s *= 1.0 - prob
        h *= prob
        if s < 1e-200:
            s, e = math.frexp(s)
            s_exp += e
        if h < 1e-200:
            h, e = math.frexp(h)
            h_exp += e
    s = math.log(s) + s_exp * _LN2
    h = math.log(h) + h_exp * _LN2
    n = len(probabilities)
    spam = 1.0 - chi2q(-2.0 * s, 2 * n)
    ham = 1.0 - chi2q(-2.0 * h, 2 * n)
    return (spam - ham + 1.0) / 2.0


def classify(store: BayesStore, hashes: list[int]) -> Verdict:
    totals = store.learnt()
    known = store.counts(hashes)
    clues = []
    # Most tokens share a few (spam, ham) pairs (1, 0), (0, 1), (2, 0)...:
    # each pair's probability is worked out once per message.
    strong: dict[tuple[int, int], float | None] = {}
    for counts in map(known.get, hashes):
        if counts is None:
            continue
        if counts not in strong:
            prob = token_probability(counts[0], counts[1], totals.spam, totals.ham)
            strong[counts] = prob if abs(prob - 0.5) >= MIN_STRENGTH else None
        prob = strong[counts]
        if prob is not None:
            clues.append(prob)
    clues.sort(key=lambda p: abs(p - 0.5), reverse=True)
    # Never exactly 0 or 1: a log of 0 would end the product.
    chosen = [min(max(p, 1e-6), 1 - 1e-6) for p in clues[:MAX_DISCRIMINATORS]]
    probability = combine(chosen)
    symbol, score = band(probability)
    return Verdict(probability, symbol, score, len(chosen), len(known))
