// Resumable uploads on the upload page: Uppy's Dashboard and its tus plugin (vendored under
// static/vendor/uppy/, see VERSION there) against the portal's tus server. Configuration comes
// from the data- attributes of #tus-upload; no inline script or style (a strict CSP is coming).
(function () {
  "use strict";

  function humanBytes(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }

  function humanSeconds(s) {
    if (!isFinite(s) || s < 0) return "–";
    s = Math.round(s);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function setup(box) {
    var U = window.Uppy;
    if (!U || !U.Uppy || !U.Tus || !U.Dashboard) return; // the plain form stays
    var d = box.dataset;
    var extensions = d.extensions.split(",").filter(Boolean);
    var errorBox = box.querySelector("#tus-error");
    var table = box.querySelector("#tus-files");
    var rows = {};
    var samples = {};

    function showError(text) { errorBox.textContent = text; errorBox.hidden = !text; }

    var uppy = new U.Uppy({
      id: "portal-dataset-" + d.dataset,
      autoProceed: true,  // a dropped file starts at once, as the single-piece form did
      restrictions: {
        maxFileSize: parseInt(d.maxBytes, 10),
        minFileSize: 1,
        allowedFileTypes: extensions.map(function (e) { return "." + e; })
      },
      meta: { dataset: d.dataset }
    });
    uppy.use(U.Dashboard, {
      inline: true,
      target: "#uppy-dashboard",
      height: 320,
      width: "100%",
      showProgressDetails: true,
      proudlyDisplayPoweredByUppy: false,
      hideProgressDetails: false
    });
    uppy.use(U.Tus, {
      endpoint: d.endpoint,
      chunkSize: parseInt(d.chunkBytes, 10),
      headers: { "X-CSRFToken": d.csrf },
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
      allowedMetaFields: ["dataset", "name", "type"],
      removeFingerprintOnSuccess: true,
      withCredentials: true
    });

    function row(file) {
      if (rows[file.id]) return rows[file.id];
      var tr = document.createElement("tr");
      tr.dataset.name = file.name;
      ["name", "pct", "speed", "eta", "status"].forEach(function (cls) {
        var td = document.createElement("td");
        td.className = cls;
        tr.appendChild(td);
      });
      tr.querySelector(".name").textContent = file.name + " (" + humanBytes(file.size) + ")";
      var bar = document.createElement("progress");
      bar.max = 100; bar.value = 0;
      tr.querySelector(".pct").appendChild(bar);
      tr.querySelector(".pct").appendChild(document.createTextNode(" "));
      var label = document.createElement("span");
      label.className = "pct-label";
      label.textContent = "0 %";
      tr.querySelector(".pct").appendChild(label);
      tr.querySelector(".status").textContent = "waiting";
      table.querySelector("tbody").appendChild(tr);
      table.hidden = false;
      rows[file.id] = tr;
      return tr;
    }

    uppy.on("file-added", function (file) {
      showError("");
      uppy.setFileMeta(file.id, { dataset: d.dataset });
      row(file);
    });
    uppy.on("file-removed", function (file) {
      if (rows[file.id]) { rows[file.id].remove(); delete rows[file.id]; }
    });
    // Refused before any byte is sent: wrong type, too large, empty.
    uppy.on("restriction-failed", function (file, error) {
      var text = file && file.size === 0 ? "The file is empty." : error.message;
      showError((file ? file.name + ": " : "") + text);
    });
    uppy.on("upload-progress", function (file, progress) {
      var tr = row(file);
      var now = Date.now();
      var sent = progress.bytesUploaded;
      var total = progress.bytesTotal || file.size;
      var s = samples[file.id] || (samples[file.id] = []);
      s.push([now, sent]);
      while (s.length > 2 && now - s[0][0] > 5000) s.shift();  // speed over the last 5 s
      var speed = s.length > 1 ? (sent - s[0][1]) / ((now - s[0][0]) / 1000) : 0;
      var pct = total ? Math.floor((sent / total) * 100) : 0;
      tr.querySelector("progress").value = pct;
      tr.querySelector(".pct-label").textContent = pct + " %";
      tr.querySelector(".speed").textContent = speed > 0 ? humanBytes(speed) + "/s" : "–";
      tr.querySelector(".eta").textContent = speed > 0 ? humanSeconds((total - sent) / speed) : "–";
      tr.querySelector(".status").textContent = file.isPaused ? "paused" : "uploading";
    });
    uppy.on("upload-pause", function (file, isPaused) {
      var f = typeof file === "string" ? uppy.getFile(file) : file;
      if (f && rows[f.id]) rows[f.id].querySelector(".status").textContent = isPaused ? "paused" : "uploading";
    });
    uppy.on("upload-success", function (file) {
      var tr = row(file);
      tr.querySelector("progress").value = 100;
      tr.querySelector(".pct-label").textContent = "100 %";
      tr.querySelector(".eta").textContent = "–";
      tr.querySelector(".status").textContent = "stored";
      tr.classList.add("done");
    });
    uppy.on("upload-error", function (file, error) {
      var tr = file && row(file);
      if (tr) tr.querySelector(".status").textContent = "failed";
      var text = (error && error.message) || "The upload failed.";
      var match = /response text: ([^,]*)/.exec(text);
      showError((file ? file.name + ": " : "") + (match ? match[1] : text) + " Retry it from the list above.");
    });
    uppy.on("complete", function (result) {
      var done = box.querySelector("#tus-done");
      if (!result.successful.length) return;
      done.textContent = "Uploaded " + result.successful.length + " file" + (result.successful.length > 1 ? "s" : "") + ". ";
      var link = document.createElement("a");
      link.href = d.doneUrl;
      link.textContent = "Back to the dataset to release them";
      done.appendChild(link);
      done.hidden = false;
    });

    box.hidden = false;
    var plain = document.getElementById("upload-form-plain");
    if (plain) plain.hidden = true;
    window.portalUppy = uppy; // for the browser tests and the console
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("tus-upload");
    if (box) setup(box);
  });
})();
