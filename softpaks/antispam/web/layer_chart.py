"""A layer's passed / deferred / rejected per hour or per day as inline SVG,
grouped bars drawn on the server like the dashboard's chart (webui.chart),
so the page loads no chart library and nothing from elsewhere."""

from __future__ import annotations

from webui.chart import Bar, Chart, nice_top

SERIES = (("passed", "Passed", "#2f855a"), ("deferred", "Deferred", "#b7791f"),
          ("rejected", "Rejected", "#c53030"))
WIDTH, HEIGHT = 720, 160
LEFT, BOTTOM, TOP = 40, 24, 10


def build(buckets: list[dict], layer: str, label_every: int) -> Chart:
    """Bars for one layer over the buckets of layer_stats.hourly / daily; a
    bar only where something was counted."""
    values = [bucket["counts"][layer] for bucket in buckets]
    peak = max([found[key] for found in values for key, _, _ in SERIES] + [0])
    top = nice_top(peak)
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / max(len(buckets), 1)
    bar_width = slot * 0.8 / len(SERIES)
    bars, labels = [], []
    for index, (bucket, found) in enumerate(zip(buckets, values)):
        for number, (key, label, color) in enumerate(SERIES):
            if not found[key]:
                continue
            height = plot_height * found[key] / top
            x = LEFT + index * slot + slot * 0.1 + number * bar_width
            bars.append(Bar(round(x, 1), round(TOP + plot_height - height, 1),
                            round(bar_width, 1), round(height, 1), color,
                            f"{bucket['label']}: {found[key]} {label.lower()}"))
        if index % label_every == 0:
            labels.append((round(LEFT + index * slot + slot / 2, 1), bucket["label"]))
    ticks = [(round(TOP + plot_height * (1 - f), 1), str(int(top * f))) for f in (0, 0.5, 1)]
    return Chart(WIDTH, HEIGHT, bars, ticks, labels,
                 [(label, color) for _, label, color in SERIES], peak, TOP + plot_height, LEFT)
