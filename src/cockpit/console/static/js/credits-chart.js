// Credits & Allocations, Overview tab: the allocation overview chart. Reads the figures from
// <script type="application/json" id="allocation-chart-data"> (exact decimal strings) and draws,
// per group, its budget, what it distributed to its members and what they used this cycle. Drawn
// again after htmx swaps the figures in (the Refresh button). Chart.js is loaded once, on demand,
// from the canvas's data-chartjs URL (the vendored file).
(function () {
  "use strict";

  const ui = window.Cockpit;  // cockpit.js: theme colours, Chart.js on demand, reduced motion

  // Brought back by a Refresh swap: the htmx:afterSwap listener below redraws the chart.
  if (window.cockpitAllocationChart) return;

  let chart = null;

  // "1234567.25" -> "1,234,567.25", on the string itself: no rounding through a float.
  function grouped(text) {
    const negative = text.startsWith("-");
    const [whole, fraction] = (negative ? text.slice(1) : text).split(".");
    const digits = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return (negative ? "-" : "") + digits + (fraction ? "." + fraction : "");
  }

  function draw(canvas, data) {
    const accent = ui.cssVar("--accent", "#5b4cf0");
    const accentLight = ui.cssVar("--accent-100", "#e2ddff");
    const success = ui.cssVar("--success", "#14804a");
    const danger = ui.cssVar("--danger", "#c8283b");
    const text2 = ui.cssVar("--text-2", "#4a5263");
    const muted = ui.cssVar("--muted", "#7a8294");
    const border = ui.cssVar("--border", "#e4e7ee");
    const font = ui.cssVar("--font", "system-ui, sans-serif");
    const groups = data.groups;
    // Bar lengths are for the eye; every number shown (tooltips) is the exact string.
    const series = [
      { key: "budget", label: "Budget", color: accentLight, edge: accent },
      { key: "distributed", label: "Distributed", color: accent, edge: accent },
      { key: "used", label: "Used", color: success, edge: success },
    ];
    const reduceMotion = ui.reducedMotion();
    const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

    chart = new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: groups.map(function (g) { return g.name; }),
        datasets: series.map(function (s) {
          return {
            label: s.label,
            key: s.key,
            data: groups.map(function (g) { return Number(g[s.key]); }),
            backgroundColor: groups.map(function (g) {
              // A group that used its whole budget shows its usage in the danger colour.
              return s.key === "used" && Number(g.budget) > 0 && Number(g.used) >= Number(g.budget) ? danger : s.color;
            }),
            borderColor: s.edge,
            borderWidth: s.key === "budget" ? 1 : 0,
            borderRadius: 4,
            borderSkipped: false,
            barPercentage: 0.82,
            categoryPercentage: 0.78,
          };
        }),
      },
      options: {
        indexAxis: "y",
        responsive: true,
        maintainAspectRatio: false,
        animation: reduceMotion ? false : { duration: 350 },
        font: { family: font },
        plugins: {
          legend: {
            position: "top",
            align: "end",
            labels: { boxWidth: 12, boxHeight: 12, useBorderRadius: true, borderRadius: 3, color: text2, font: { family: font, size: 12 } },
          },
          tooltip: {
            callbacks: {
              label: function (item) {
                const g = groups[item.dataIndex];
                const key = item.dataset.key;
                let line = " " + item.dataset.label + ": " + grouped(g[key]) + " " + data.unit;
                if (key === "distributed") line += " (" + grouped(g.available) + " available)";
                return line;
              },
              afterTitle: function (items) {
                const g = groups[items[0].dataIndex];
                return g.members + (g.members === 1 ? " member" : " members");
              },
            },
          },
        },
        scales: {
          x: {
            beginAtZero: true,
            grid: { color: border },
            border: { display: false },
            ticks: { color: muted, font: { family: font, size: 11 }, callback: function (v) { return compact.format(v); } },
            title: { display: true, text: "Credits this cycle", color: muted, font: { family: font, size: 11 } },
          },
          y: {
            grid: { display: false },
            border: { color: border },
            ticks: {
              color: text2,
              font: { family: font, size: 12, weight: "600" },
              callback: function (_value, index) {
                const name = groups[index].name;
                return name.length > 24 ? name.slice(0, 23) + "…" : name;
              },
            },
          },
        },
      },
    });
  }

  function clear() {
    if (chart) {
      chart.destroy();
      chart = null;
    }
  }

  function render() {
    // Without Chart.js the table below still has every figure.
    ui.mountChart("allocation-chart", "allocation-chart-data", clear, draw);
  }

  window.cockpitAllocationChart = { render: render };
  document.addEventListener("htmx:afterSwap", function () {
    // Redraw when the swap brought a new canvas (or took it away); other swaps leave it alone.
    const canvas = document.getElementById("allocation-chart");
    if (!chart || chart.canvas !== canvas) render();
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", render);
  } else {
    render();
  }
})();
