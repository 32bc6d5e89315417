// Support & Diagnostics > Email Diagnostics: follow a run, filling in each
// check's row as its result arrives. Everything shown goes in as text, never
// as markup: a server's greeting is the server's to choose.
"use strict";

function showCheck(check) {
  var row = document.getElementById("check-" + check.name);
  if (!row) { return; }
  row.className = "status-" + check.status;
  row.querySelector(".status").textContent = check.status;
  row.querySelector(".reason").textContent = check.reason;
  row.querySelector(".fix").textContent = check.fix;
}

function followDiagnostics(table) {
  var state = document.getElementById("diagnostics-state");
  var poll = function () {
    fetch(table.dataset.url, {credentials: "same-origin"}).then(function (r) { return r.json(); })
      .then(function (job) {
        job.checks.forEach(showCheck);
        if (job.state === "done") {
          var failed = job.checks.filter(function (c) { return c.status === "fail"; }).length;
          var warned = job.checks.filter(function (c) { return c.status === "warn"; }).length;
          state.textContent = "Finished: " + failed + " failed, " + warned + " warnings.";
          state.dataset.state = table.dataset.state = "done";
        } else {
          setTimeout(poll, 500);
        }
      }).catch(function () { setTimeout(poll, 2000); });
  };
  poll();
}

document.addEventListener("DOMContentLoaded", function () {
  var table = document.getElementById("diagnostics");
  if (table && table.dataset.state === "running") { followDiagnostics(table); }
});
