"""The dashboard's mail-per-hour chart as inline SVG: grouped bars for mail
in, out and rejected in each of the last 24 hours. Drawn on the server so the
box needs no chart library and the page loads nothing from elsewhere."""

from __future__ import annotations

import time
from dataclasses import dataclass

SERIES = (("received", "In", "#2b6cb0"), ("delivered", "Out", "#2f855a"),
          ("rejected", "Rejected", "#c53030"))
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


def _nice_top(peak: int) -> int:
    """The smallest of 4, 10, 20, 50, 100, 200, 500 ... not below the peak."""
    if peak <= 4:
        return 4
    top = 10
    while True:
        for step in (1, 2, 5):
            if top * step >= peak:
                return top * step
        top *= 10


def build(rows: list) -> Chart:
    peak = max([row[key] for row in rows for key, _, _ in SERIES] + [0])
    top = _nice_top(peak)
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / max(len(rows), 1)
    bar_width = slot * 0.8 / len(SERIES)
    bars, hours = [], []
    for index, row in enumerate(rows):
        hour = time.strftime("%H:00", time.localtime(row["hour"]))
        for number, (key, label, color) in enumerate(SERIES):
            height = plot_height * row[key] / top
            x = LEFT + index * slot + slot * 0.1 + number * bar_width
            bars.append(Bar(round(x, 1), round(TOP + plot_height - height, 1), round(bar_width, 1),
                            round(height, 1), color, f"{hour}: {row[key]} {label.lower()}"))
        if index % 3 == 0:
            hours.append((round(LEFT + index * slot + slot / 2, 1), hour))
    ticks = [(round(TOP + plot_height * (1 - f), 1), str(int(top * f))) for f in (0, 0.5, 1)]
    return Chart(WIDTH, HEIGHT, bars, ticks, hours, [(label, color) for _, label, color in SERIES],
                 peak, TOP + plot_height, LEFT)
