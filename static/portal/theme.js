// Loaded in <head> without defer so the chosen theme applies before the first paint.
// The theme follows prefers-color-scheme until the toggle picks one; the pick is remembered.
(function () {
  "use strict";
  var KEY = "portal-theme";
  var root = document.documentElement;
  root.classList.add("js");
  function stored() {
    try { return window.localStorage.getItem(KEY); } catch (e) { return null; }
  }
  function current() {
    var chosen = root.getAttribute("data-theme");
    if (chosen) return chosen;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  function label(button) {
    var dark = current() === "dark";
    button.setAttribute("aria-pressed", dark ? "true" : "false");
    button.textContent = dark ? "Light theme" : "Dark theme";
  }
  var saved = stored();
  if (saved === "dark" || saved === "light") root.setAttribute("data-theme", saved);

  window.portalTheme = current;  // charts read it to pick their colours
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      label(button);
      button.addEventListener("click", function () {
        var next = current() === "dark" ? "light" : "dark";
        root.setAttribute("data-theme", next);
        try { window.localStorage.setItem(KEY, next); } catch (e) { /* private mode: not remembered */ }
        document.querySelectorAll("[data-theme-toggle]").forEach(label);
        document.dispatchEvent(new CustomEvent("portal:theme", {detail: next}));
      });
    });
  });
})();
