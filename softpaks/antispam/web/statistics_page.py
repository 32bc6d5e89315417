"""Anti-Spam > Statistics: per layer, what it passed, deferred and rejected
in each of the last 24 hours and each of the last 30 days, as charts and as
a table of totals."""

from __future__ import annotations

import time

from flask import render_template

from . import layer_chart, layer_stats
from .blueprint import blueprint
from .common import store


@blueprint.route("/statistics")
def statistics():
    now = time.time()
    hours = layer_stats.hourly(store(), now)
    days = layer_stats.daily(store(), now)
    layers = [{"key": key, "label": label,
               "hours": layer_chart.build(hours, key, label_every=3),
               "days": layer_chart.build(days, key, label_every=5)}
              for key, label in layer_stats.LAYERS]
    return render_template("antispam/statistics.html", layers=layers,
                           outcomes=layer_stats.OUTCOMES,
                           hour_totals=layer_stats.totals(hours),
                           day_totals=layer_stats.totals(days))
