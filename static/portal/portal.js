// Small progressive enhancements. Pages work without JavaScript; htmx does the live parts.
(function () {
  "use strict";

  // Confirmation before destructive actions: <form data-confirm="...">.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute && form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
      event.stopImmediatePropagation();
      return;
    }
    // A second click must not send the form twice (the server is idempotent anyway).
    var once = form.querySelector("button[data-once]");
    if (once) {
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
      setTimeout(function () { once.disabled = true; }, 0);
    }
  }, true);

  // Drag-and-drop upload with a progress bar: XHR gives upload progress events.
  function setupUpload(form) {
    var zone = form.querySelector("#dropzone");
    var input = form.querySelector("input[type=file]");
    var errorBox = form.querySelector("#upload-error");
    var progress = form.querySelector("#upload-progress");
    var bar = progress.querySelector("progress");
    var pct = progress.querySelector(".pct");
    var done = form.querySelector("#upload-done");
    var maxBytes = parseInt(form.dataset.maxBytes, 10);
    var extensions = form.dataset.extensions.split(",");

    function showError(text) { errorBox.textContent = text; errorBox.hidden = !text; }

    function check(file) {
      if (!file) return "Choose a file first.";
      if (file.size === 0) return "The file is empty.";
      if (file.size > maxBytes) return "The file is larger than the limit of " + maxBytes.toLocaleString() + " bytes.";
      var ext = file.name.indexOf(".") >= 0 ? file.name.split(".").pop().toLowerCase() : "";
      if (extensions.indexOf(ext) < 0) return "Files of type ." + (ext || "(none)") + " are not accepted. Accepted: ." + extensions.join(", .");
      return "";
    }

    function send(file) {
      var problem = check(file);
      showError(problem);
      done.hidden = true;
      if (problem) return;
      var data = new FormData(form);
      data.set("file", file, file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action || window.location.href);
      xhr.setRequestHeader("Accept", "application/json");
      progress.hidden = false;
      progress.querySelector(".name").textContent = file.name;
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          var value = Math.round((e.loaded / e.total) * 100);
          bar.value = value; pct.textContent = value + " %";
        }
      });
      xhr.addEventListener("load", function () {
        var body = {};
        try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        if (xhr.status === 201) {
          bar.value = 100; pct.textContent = "100 %";
          done.innerHTML = "";
          done.append("Uploaded " + body.name + " (" + body.size.toLocaleString() + " bytes). ");
          var link = document.createElement("a");
          link.href = body.dataset_url; link.textContent = "Back to the dataset to release it";
          done.append(link);
          done.hidden = false;
        } else if (body.errors) {
          progress.hidden = true;
          showError(Object.values(body.errors).flat().join(" "));
        } else {
          progress.hidden = true;
          showError("The upload failed (HTTP " + xhr.status + "). Nothing was saved; try again.");
        }
      });
      xhr.addEventListener("error", function () {
        progress.hidden = true;
        showError("The connection was lost during the upload. Nothing was saved; try again.");
      });
      xhr.send(data);
    }

    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) {
      var file = e.dataTransfer.files[0];
      if (file) send(file);
    });
    input.addEventListener("change", function () { if (input.files[0]) send(input.files[0]); });
    form.addEventListener("submit", function (e) { e.preventDefault(); send(input.files[0]); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("upload-form");
    if (form) setupUpload(form);
  });
})();

// Browse buttons: fields marked data-browse ask the platform for choices; a choice fills
// its field and any others the connector names (e.g. a query's parameters).
(function () {
  "use strict";
  function formValues(form) {
    var params = new URLSearchParams();
    form.querySelectorAll("[name^='target-']").forEach(function (el) {
      if ((el.type === "checkbox" || el.type === "radio") && !el.checked) return;
      params.append(el.name, el.value);
    });
    return params;
  }
  function fill(form, values) {
    Object.keys(values).forEach(function (name) {
      var value = values[name];
      var boxes = form.querySelectorAll("input[type=checkbox][name='target-" + name + "']");
      if (boxes.length) {
        var wanted = Array.isArray(value) ? value.map(String) : [String(value)];
        boxes.forEach(function (b) { b.checked = wanted.indexOf(b.value) >= 0; });
        return;
      }
      var el = form.querySelector("[name='target-" + name + "']");
      if (!el) return;
      if (el.dataset.list && Array.isArray(value) && value.length === 0) {
        el.value = "";  // an empty list clears the field (e.g. another dataset was chosen)
      } else if (el.dataset.list) {
        // A list field (one value per line): add the chosen values to the ones there.
        var lines = el.value.split("\n").map(function (l) { return l.trim(); }).filter(Boolean);
        (Array.isArray(value) ? value : [value]).forEach(function (v) { if (lines.indexOf(String(v)) < 0) lines.push(String(v)); });
        el.value = lines.join("\n");
      } else {
        el.value = (value !== null && typeof value === "object") ? JSON.stringify(value, null, 2) : String(value);
      }
      el.dispatchEvent(new Event("change", {bubbles: true}));
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-browse]").forEach(function (input) {
      var form = input.form;
      var button = document.createElement("button");
      button.type = "button"; button.className = "small browse-toggle"; button.textContent = "Browse…";
      var box = document.createElement("div");
      input.insertAdjacentElement("afterend", box);
      input.insertAdjacentElement("afterend", button);
      button.addEventListener("click", function () {
        var params = formValues(form);
        params.set("q", input.value || "");
        box.innerHTML = '<p class="muted"><span class="spinner"></span> Asking the platform…</p>';
        fetch(input.dataset.browse + "?" + params.toString(), {headers: {"HX-Request": "true"}})
          .then(function (r) { return r.text(); })
          .then(function (html) { box.innerHTML = html; })
          .catch(function () { box.innerHTML = '<p class="error">The platform could not be asked. Try again.</p>'; });
      });
      box.addEventListener("click", function (e) {
        var choice = e.target.closest("[data-fill]");
        if (!choice) return;
        fill(form, JSON.parse(choice.dataset.fill));
        box.innerHTML = "";
      });
    });
  });
})();

// Fields that apply to one choice of another field only (json_schema_extra "show_when"),
// e.g. Tailer's pasted JWT is shown only in the "jwt" authentication mode.
(function () {
  "use strict";
  function update(form) {
    form.querySelectorAll("[data-show-when]").forEach(function (input) {
      var rules = JSON.parse(input.dataset.showWhen);
      var prefix = input.name.indexOf("-") >= 0 ? input.name.slice(0, input.name.lastIndexOf("-") + 1) : "";
      var visible = Object.keys(rules).every(function (name) {
        var control = form.querySelector("[name='" + prefix + name + "']");
        var allowed = [].concat(rules[name]).map(String);
        return !control || allowed.indexOf(control.value) >= 0;
      });
      var wrapper = input.closest(".field") || input;
      wrapper.hidden = !visible;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form").forEach(function (form) {
      if (!form.querySelector("[data-show-when]")) return;
      update(form);
      form.addEventListener("change", function () { update(form); });
    });
  });
})();

// Phones: the top menu collapses behind a Menu button (CSS hides it only when JS runs).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.querySelector(".nav-toggle");
    var bar = document.querySelector(".topbar");
    if (!toggle || !bar) return;
    toggle.addEventListener("click", function () {
      var open = bar.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  });
})();

// Tables that scroll inside their own box on phones are reachable by keyboard.
(function () {
  "use strict";
  function mark() {
    document.querySelectorAll("table.table").forEach(function (table) {
      var scrolls = table.scrollWidth > table.clientWidth + 1;
      if (scrolls && !table.hasAttribute("tabindex")) {
        table.setAttribute("tabindex", "0");
        table.setAttribute("data-scroll-box", "");
      } else if (!scrolls && table.hasAttribute("data-scroll-box")) {
        table.removeAttribute("tabindex");
        table.removeAttribute("data-scroll-box");
      }
    });
  }
  document.addEventListener("DOMContentLoaded", mark);
  window.addEventListener("resize", mark);
  document.addEventListener("htmx:afterSettle", mark);
})();

// "Select every release on this page" in the history's bulk form.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var all = event.target;
    if (!all.matches || !all.matches("[data-select-all]")) return;
    all.form.querySelectorAll("input[name=ids]").forEach(function (box) { box.checked = all.checked; });
  });
})();

// The release log opens at its newest line, and follows new lines while it is at the bottom.
(function () {
  "use strict";
  var pinned = true;
  function follow() {
    var log = document.getElementById("release-log");
    if (log && pinned) log.scrollTop = log.scrollHeight;
  }
  document.addEventListener("DOMContentLoaded", follow);
  document.addEventListener("htmx:beforeSwap", function (event) {
    var log = document.getElementById("release-log");
    // "Load earlier lines" swaps inside the log: keep the reader where they are.
    if (log && !log.contains(event.detail.target)) pinned = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    var log = document.getElementById("release-log");
    if (log && !log.contains(event.detail.target)) follow();
  });
})();

// Keyboard: "/" focuses the page's search (or opens the jump box); Ctrl-K / Cmd-K opens a
// jump-to box for any dataset, mapping, connection or release by name or id.
(function () {
  "use strict";
  var dialog = null, input = null, list = null, timer = null, seq = 0;

  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }
  function build() {
    dialog = document.createElement("dialog");
    dialog.className = "jump";
    dialog.setAttribute("aria-label", "Jump to");
    var label = document.createElement("label");
    label.textContent = "Jump to a dataset, mapping, connection or release (name or #id)";
    input = document.createElement("input");
    input.type = "search"; input.id = "jump-input"; input.autocomplete = "off";
    label.htmlFor = "jump-input";
    list = document.createElement("ul");
    list.className = "jump-results";
    list.setAttribute("aria-live", "polite");
    dialog.append(label, input, list);
    document.body.append(dialog);
    input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(search, 150); });
    dialog.addEventListener("keydown", function (e) {
      var links = Array.prototype.slice.call(list.querySelectorAll("a"));
      var at = links.indexOf(document.activeElement);
      if (e.key === "ArrowDown" && links.length) { e.preventDefault(); links[Math.min(at + 1, links.length - 1)].focus(); }
      if (e.key === "ArrowUp") { e.preventDefault(); if (at <= 0) input.focus(); else links[at - 1].focus(); }
      if (e.key === "Enter" && document.activeElement === input && links.length) { e.preventDefault(); links[0].click(); }
    });
    dialog.addEventListener("click", function (e) { if (e.target === dialog) dialog.close(); });
  }
  function jumpUrl() {
    var button = document.querySelector("[data-jump-url]");
    return button ? button.dataset.jumpUrl : "";
  }
  function search() {
    var q = input.value.trim(), mine = ++seq;
    if (!q) { list.innerHTML = ""; return; }
    fetch(jumpUrl() + "?q=" + encodeURIComponent(q), {headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (mine !== seq) return;
        list.innerHTML = "";
        if (!data.results.length) {
          var none = document.createElement("li"); none.className = "muted"; none.textContent = "Nothing matches.";
          list.append(none); return;
        }
        data.results.forEach(function (r) {
          var li = document.createElement("li"), a = document.createElement("a"), kind = document.createElement("span");
          kind.className = "badge"; kind.textContent = r.kind;
          a.href = r.url; a.append(kind, " " + r.label);
          li.append(a); list.append(li);
        });
      });
  }
  function open() {
    if (!jumpUrl()) return;
    if (!dialog) build();
    if (!dialog.open) dialog.showModal();
    input.select();
  }
  document.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && (e.key === "k" || e.key === "K")) { e.preventDefault(); open(); return; }
    if (e.key === "/" && !e.ctrlKey && !e.metaKey && !e.altKey && !typing(document.activeElement)) {
      var search = document.querySelector("main input[name=q], main input[type=search]");
      e.preventDefault();
      if (search) search.focus(); else open();
    }
  });
  document.addEventListener("click", function (e) {
    if (e.target.closest && e.target.closest("[data-jump-open]")) open();
  });
})();
