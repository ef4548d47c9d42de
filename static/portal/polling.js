// Polling without htmx's eval'd trigger filters (CSP: no 'unsafe-eval').
// An element polled with hx-trigger="every Ns" and data-hidden-every="M" is polled every N s while
// the tab is visible and at most every M s while it is hidden (M = 0: not at all while hidden).
(function () {
  "use strict";
  var last = {};
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    var hiddenEvery = elt && elt.getAttribute && elt.getAttribute("data-hidden-every");
    if (hiddenEvery === null || hiddenEvery === undefined) return;
    var key = elt.getAttribute("hx-get") || elt.id;
    var now = Date.now();
    if (document.hidden) {
      var seconds = Number(hiddenEvery);
      if (!seconds || now - (last[key] || 0) < seconds * 1000) {
        event.preventDefault();
        return;
      }
    }
    last[key] = now;
  });
})();
