"""The dashboard's mail-per-hour chart as inline SVG: grouped bars for mail
in, out and rejected in each of the last 24 hours, the rejected bar stacked
by the check that refused (the Anti-Spam layers, Address Verification...).
Drawn on the server so the box needs no chart library and the page loads
nothing from elsewhere."""

from __future__ import annotations

import time
from dataclasses import dataclass

SERIES = (("received", "In", "#2b6cb0"), ("delivered", "Out", "#2f855a"),
          ("rejected", "Rejected", "#c53030"))
# Checks that refused the most get their own colour; the rest share "other".
CHECK_COLORS = ("#c53030", "#dd6b20", "#b7791f", "#805ad5", "#d53f8c")
OTHER_COLOR = "#718096"
WIDTH, HEIGHT = 720, 220
LEFT, BOTTOM, TOP = 40, 24, 10


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass
class Chart:
    width: int
    height: int
    bars: list
    ticks: list      # (y, label) for the value axis
    hours: list      # (x, label) for every third hour
    legend: list     # (label, color)
    peak: int
    plot_bottom: float
    left: int


def nice_top(peak: int) -> int:
    """The smallest of 4, 10, 20, 50, 100, 200, 500 ... not below the peak."""
    if peak <= 4:
        return 4
    top = 10
    while True:
        for step in (1, 2, 5):
            if top * step >= peak:
                return top * step
        top *= 10


def _check_colors(rejected_by: dict) -> dict:
    totals: dict = {}
    for counts in rejected_by.values():
        for check, count in counts.items():
            totals[check] = totals.get(check, 0) + count
    ranked = sorted(totals, key=lambda c: (-totals[c], c))
    return {check: CHECK_COLORS[i] if i < len(CHECK_COLORS) else OTHER_COLOR
            for i, check in enumerate(ranked)}


def _stacked(x, bottom, width, plot_height, top, hour, counts: dict, colors: dict) -> list:
    """The rejected bar as segments, one per check (the others merged)."""
    segments: dict = {}
    for check, count in counts.items():
        color = colors[check]
        name = check if color != OTHER_COLOR else "other checks"
        total, _ = segments.get(color, (0, name))
        segments[color] = (total + count, name)
    bars = []
    for color in list(dict.fromkeys(colors.values())):
        if color not in segments:
            continue
        count, name = segments[color]
        height = plot_height * count / top
        bottom -= height
        bars.append(Bar(round(x, 1), round(bottom, 1), round(width, 1), round(height, 1), color,
                        f"{hour}: {count} rejected by {name}"))
    return bars


def build(rows: list, rejected_by: dict | None = None) -> Chart:
    """rows: stats.hourly(); rejected_by: {hour: {check: refusals}} to stack
    the rejected bars by check (where it has counts for an hour)."""
    rejected_by = rejected_by or {}
    colors = _check_colors(rejected_by)
    peak = max([row[key] for row in rows for key, _, _ in SERIES] + [0])
    top = nice_top(peak)
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / max(len(rows), 1)
    bar_width = slot * 0.8 / len(SERIES)
    bars, hours = [], []
    for index, row in enumerate(rows):
        hour = time.strftime("%H:00", time.localtime(row["hour"]))
        for number, (key, label, color) in enumerate(SERIES):
            height = plot_height * row[key] / top
            x = LEFT + index * slot + slot * 0.1 + number * bar_width
            if key == "rejected" and rejected_by.get(row["hour"]):
                bars += _stacked(x, TOP + plot_height, bar_width, plot_height, top, hour,
                                 rejected_by[row["hour"]], colors)
                continue
            bars.append(Bar(round(x, 1), round(TOP + plot_height - height, 1), round(bar_width, 1),
                            round(height, 1), color, f"{hour}: {row[key]} {label.lower()}"))
        if index % 3 == 0:
            hours.append((round(LEFT + index * slot + slot / 2, 1), hour))
    ticks = [(round(TOP + plot_height * (1 - f), 1), str(int(top * f))) for f in (0, 0.5, 1)]
    legend = [(label, color) for key, label, color in SERIES if key != "rejected" or not colors]
    named = [(f"Rejected by {check}", color) for check, color in colors.items()
             if color != OTHER_COLOR]
    if OTHER_COLOR in colors.values():
        named.append(("Rejected by other checks", OTHER_COLOR))
    return Chart(WIDTH, HEIGHT, bars, ticks, hours, legend + named, peak, TOP + plot_height, LEFT)
