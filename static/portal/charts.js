// Charts drawn with the vendored uPlot from data the page carries in a JSON <script>
// (json_script; nothing executes from it). Colours come from the theme's CSS variables,
// and every chart is drawn again when the theme or the width changes.
(function () {
  "use strict";
  var ORDER = ["succeeded", "failed", "cancelled", "running", "queued"];
  var COLOUR = {succeeded: "--ok", failed: "--err", cancelled: "--warn", running: "--info-fg", queued: "--muted"};

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function data(figure) {
    var node = document.getElementById(figure.dataset.source);
    return node ? JSON.parse(node.textContent) : null;
  }
  function axes(yLabel, extra) {
    var fg = css("--muted"), grid = css("--line");
    var axis = function (o) {
      return Object.assign({stroke: fg, grid: {stroke: grid, width: 1}, ticks: {stroke: grid, width: 1}}, o);
    };
    return [axis({}), axis({label: yLabel})].concat(extra ? [axis(extra)] : []);
  }

  function daily(figure, d, width) {
    // Stacked bars: each series holds the running total, drawn from the tallest down.
    var stacked = [], total = d.x.map(function () { return 0; });
    ORDER.forEach(function (s) {
      total = total.map(function (t, i) { return t + (d.series[s] ? d.series[s][i] : 0); });
      stacked.push(total.slice());
    });
    var bars = uPlot.paths.bars({size: [0.7, 40]});
    var series = [{}], columns = [d.x];
    for (var k = ORDER.length - 1; k >= 0; k--) {
      (function (status) {
        series.push({
          label: status, fill: css(COLOUR[status]), stroke: css(COLOUR[status]), paths: bars, points: {show: false},
          value: function (u, v, si, i) { return i == null ? "—" : d.series[status][i]; }
        });
      })(ORDER[k]);
      columns.push(stacked[k]);
    }
    series.push({label: "success rate %", scale: "%", stroke: css("--accent"), width: 2, spanGaps: true,
                 value: function (u, v) { return v == null ? "—" : v + " %"; }});
    columns.push(d.success_rate);
    return new uPlot({
      width: width, height: 240, series: series,
      scales: {x: {time: true}, "%": {range: [0, 100]}},
      axes: axes("releases", {scale: "%", side: 1, label: "success %", grid: {show: false}}),
    }, columns, figure.querySelector(".chart-canvas"));
  }

  function trend(figure, d, width) {
    return new uPlot({
      width: width, height: 220,
      series: [{}, {label: "run time (s)", stroke: css("--accent"), width: 2, spanGaps: true, points: {show: true, size: 5}},
               {label: "failed", stroke: css("--err"), fill: css("--err"), paths: function () { return null; },
                points: {show: true, size: 9, fill: css("--err"), stroke: css("--err")}}],
      scales: {x: {time: true}},
      axes: axes("seconds"),
    }, [d.x, d.seconds, d.failed], figure.querySelector(".chart-canvas"));
  }

  var KINDS = {daily: daily, trend: trend};
  function render(figure) {
    if (typeof uPlot === "undefined") return;
    var kind = KINDS[figure.dataset.chart], d = data(figure);
    if (!kind || !d) return;
    if (figure._plot) figure._plot.destroy();
    var width = Math.max(260, figure.querySelector(".chart-canvas").clientWidth || figure.clientWidth);
    figure._plot = kind(figure, d, width);
  }
  function renderAll() { document.querySelectorAll("figure[data-chart]").forEach(render); }

  var timer = null;
  document.addEventListener("DOMContentLoaded", renderAll);
  document.addEventListener("portal:theme", renderAll);
  if (window.matchMedia) window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", renderAll);
  window.addEventListener("resize", function () { clearTimeout(timer); timer = setTimeout(renderAll, 150); });
})();
