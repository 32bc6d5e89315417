// System > Firmware: upload with a progress bar, then follow the installation.
// Without this script the form still posts and the page still shows the state.
"use strict";

function uploadBundle(event) {
  var form = event.target;
  var file = document.getElementById("bundle").files[0];
  if (!file || !window.XMLHttpRequest) { return; }
  event.preventDefault();
  var bar = document.getElementById("upload-progress");
  var status = document.getElementById("upload-status");
  var button = document.getElementById("upload-button");
  if (file.size > Number(form.dataset.max)) {
    status.textContent = "This file is too large to be an update bundle.";
    return;
  }
  bar.hidden = false;
  button.disabled = true;
  status.textContent = "Uploading…";
  var request = new XMLHttpRequest();
  request.open("POST", form.action);
  // The file is the body: the box streams it to its data partition.
  request.setRequestHeader("Content-Type", "application/octet-stream");
  request.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrf_token]").value);
  request.setRequestHeader("X-Filename", file.name);
  request.upload.addEventListener("progress", function (e) {
    if (e.lengthComputable) {
      bar.value = Math.round(100 * e.loaded / e.total);
      if (e.loaded === e.total) { status.textContent = "Checking signature, architecture and version…"; }
    }
  });
  request.addEventListener("load", function () {
    // The answer is shown by the page itself (flash message), like a form post.
    window.location.reload();
  });
  request.addEventListener("error", function () {
    status.textContent = "The upload failed; nothing was installed.";
    button.disabled = false;
  });
  request.send(file);
}

function followInstall(box) {
  var poll = function () {
    fetch(box.dataset.url, {credentials: "same-origin"}).then(function (r) { return r.json(); })
      .then(function (p) {
        box.hidden = p.state === "idle";
        document.getElementById("install-state").textContent = p.state;
        document.getElementById("install-message").textContent = p.message;
        document.getElementById("install-progress").value = p.percent;
        if (p.state === "installing") { setTimeout(poll, 1000); }
        else if (box.dataset.state === "installing") { window.location.reload(); }
      }).catch(function () { setTimeout(poll, 3000); });
  };
  poll();
}

document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("upload-form");
  if (form) { form.addEventListener("submit", uploadBundle); }
  var box = document.getElementById("install-progress-box");
  if (box && box.dataset.state === "installing") { followInstall(box); }
});
