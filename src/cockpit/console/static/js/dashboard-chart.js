// Dashboard: the cost of each local day of the last 30 days. Reads the figures from
// <script type="application/json" id="cost-trend-data"> ({label, days: [{label, cost, text,
// requests}]}: `cost` is the exact amount as a string, `text` the amount as people read it, made by
// the server) and draws one bar per day. Chart.js is loaded once, on demand, from the canvas's
// data-chartjs URL (the vendored file), by cockpit.js.
(function () {
  "use strict";

  const ui = window.Cockpit;  // cockpit.js: theme colours, Chart.js on demand, reduced motion

  if (window.cockpitDashboardChart) return;

  let chart = null;

  function draw(canvas, data) {
    const accent = ui.cssVar("--accent", "#5b4cf0");
    const muted = ui.cssVar("--muted", "#7a8294");
    const border = ui.cssVar("--border", "#e4e7ee");
    const font = ui.cssVar("--font", "system-ui, sans-serif");
    const days = data.days;
    const reduceMotion = ui.reducedMotion();
    const money = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", notation: "compact", maximumFractionDigits: 2 });

    chart = new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: days.map(function (d) { return d.label; }),
        datasets: [{
          label: data.label,
          // Bar heights are for the eye; every amount shown (tooltips) is the server's text.
          data: days.map(function (d) { return Number(d.cost); }),
          backgroundColor: accent,
          borderRadius: 3,
          maxBarThickness: 28,
        }],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: reduceMotion ? false : { duration: 300 },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: function (item) {
                const d = days[item.dataIndex];
                return " " + d.text + " · " + d.requests.toLocaleString() + (d.requests === 1 ? " call" : " calls");
              },
            },
          },
        },
        scales: {
          x: {
            grid: { display: false },
            border: { color: border },
            ticks: { color: muted, font: { family: font, size: 11 }, autoSkip: true, maxRotation: 0, maxTicksLimit: 8 },
          },
          y: {
            beginAtZero: true,
            grid: { color: border },
            border: { display: false },
            ticks: { color: muted, font: { family: font, size: 11 }, maxTicksLimit: 5, callback: function (v) { return money.format(v); } },
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
    // Without Chart.js the total above the chart and the request log still have the figures.
    ui.mountChart("cost-trend-chart", "cost-trend-data", clear, draw);
  }

  window.cockpitDashboardChart = { render: render };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", render);
  } else {
    render();
  }
})();
