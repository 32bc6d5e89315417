// Progressive help for the admin pages; every page also works without it.
"use strict";

// A checkbox posts "y" whatever its state; the declaration names the state
// it shows a field for as True or False.
function controlValue(control) {
  if (control.type === "checkbox") { return control.checked ? "True" : "False"; }
  return control.value;
}

// Fields that apply only to some Server Types (data-visible-when names the
// controlling field, data-visible-values the values that show this one).
function updateVisibility() {
  document.querySelectorAll("[data-visible-when]").forEach(function (row) {
    var control = document.getElementById(row.dataset.visibleWhen);
    if (!control) { return; }
    var shown = row.dataset.visibleValues.split(",").indexOf(controlValue(control)) >= 0;
    row.hidden = !shown;
  });
}

document.addEventListener("DOMContentLoaded", function () {
  var controls = new Set();
  document.querySelectorAll("[data-visible-when]").forEach(function (row) {
    controls.add(row.dataset.visibleWhen);
  });
  controls.forEach(function (id) {
    var control = document.getElementById(id);
    if (control) { control.addEventListener("change", updateVisibility); }
  });
  updateVisibility();

  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      // Every row's checkbox in the same table (queue messages, mailbox messages).
      all.closest("table").querySelectorAll("tbody input[type=checkbox]").forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }
});
