// Cost tracking and Project → Analytics: draws the breakdown and timeline charts from the JSON next
// to each canvas (<script type="application/json" id="<canvas id>-data">: decimal strings for the
// bar lengths, the page's own formatted figures for the tooltips), sends the small choice forms when
// a select changes, and makes a breakdown row (or bar) narrow the view like its link does.
// Chart.js is loaded once, on demand, from the canvas's data-chartjs URL (the vendored file).
(function () {
  "use strict";

  const ui = window.Cockpit;  // cockpit.js: theme colours, Chart.js on demand, reduced motion

  const charts = {};
  const PALETTE = ["#5b4cf0", "#14804a", "#d97706", "#2563eb", "#c8283b", "#0f766e", "#9333ea", "#64748b", "#a3a3a3"];

  function clip(text, size) {
    return text.length > size ? text.slice(0, size - 1) + "…" : text;
  }

  function common(font, muted, border) {
    const reduceMotion = ui.reducedMotion();
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: reduceMotion ? false : { duration: 300 },
      font: { family: font },
      ticks: { color: muted, font: { family: font, size: 11 } },
      grid: { color: border },
    };
  }

  function breakdown(canvas, data) {
    const font = ui.cssVar("--font", "system-ui, sans-serif");
    const base = common(font, ui.cssVar("--muted", "#7a8294"), ui.cssVar("--border", "#e4e7ee"));
    const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [{
          data: data.values.map(Number),
          backgroundColor: ui.cssVar("--accent", "#5b4cf0"),
          borderRadius: 4,
          barPercentage: 0.8,
        }],
      },
      options: {
        indexAxis: "y",
        responsive: base.responsive,
        maintainAspectRatio: base.maintainAspectRatio,
        animation: base.animation,
        onClick: function (_event, elements) {
          if (elements.length && data.hrefs[elements[0].index]) window.location.href = data.hrefs[elements[0].index];
        },
        onHover: function (event, elements) {
          event.native.target.style.cursor = elements.length && data.hrefs[elements[0].index] ? "pointer" : "default";
        },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: function (item) { return " " + data.texts[item.dataIndex]; } } },
        },
        scales: {
          x: { beginAtZero: true, grid: base.grid, border: { display: false }, ticks: Object.assign({}, base.ticks, { callback: function (v) { return compact.format(v); } }) },
          y: { grid: { display: false }, ticks: Object.assign({}, base.ticks, { callback: function (_v, i) { return clip(data.labels[i], 22); } }) },
        },
      },
    });
  }

  function timeline(canvas, data) {
    const font = ui.cssVar("--font", "system-ui, sans-serif");
    const base = common(font, ui.cssVar("--muted", "#7a8294"), ui.cssVar("--border", "#e4e7ee"));
    const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 2 });
    const single = data.datasets.length === 1;
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: data.datasets.map(function (set, n) {
          return {
            label: set.label,
            data: set.values.map(Number),
            backgroundColor: single ? ui.cssVar("--accent", "#5b4cf0") : PALETTE[n % PALETTE.length],
            borderRadius: 2,
          };
        }),
      },
      options: {
        responsive: base.responsive,
        maintainAspectRatio: base.maintainAspectRatio,
        animation: base.animation,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { display: !single, position: "bottom", labels: { boxWidth: 12, boxHeight: 12, font: { family: font, size: 12 } } },
          tooltip: {
            callbacks: {
              label: function (item) {
                return " " + data.datasets[item.datasetIndex].label + ": " + data.datasets[item.datasetIndex].texts[item.dataIndex];
              },
            },
          },
        },
        scales: {
          x: { stacked: data.stacked, grid: { display: false }, ticks: Object.assign({}, base.ticks, { maxRotation: 0, autoSkip: true, autoSkipPadding: 12 }) },
          y: { stacked: data.stacked, beginAtZero: true, grid: base.grid, border: { display: false }, ticks: Object.assign({}, base.ticks, { callback: function (v) { return compact.format(v); } }) },
        },
      },
    });
  }

  function render() {
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      const blob = document.getElementById(canvas.dataset.chart);
      if (!blob) return;
      let data;
      try {
        data = JSON.parse(blob.textContent);
      } catch (error) {
        return;
      }
      ui.loadChartJs(canvas).then(function () {
        if (charts[canvas.id]) charts[canvas.id].destroy();
        charts[canvas.id] = canvas.id.indexOf("timeline") >= 0 ? timeline(canvas, data) : breakdown(canvas, data);
      }, function () { /* the tables have every figure */ });
    });
  }

  document.addEventListener("change", function (event) {
    const target = event.target;
    if (target instanceof HTMLSelectElement && target.hasAttribute("data-autosubmit") && target.form) {
      // The custom range waits for its dates (and the Apply button).
      if (target.name === "range" && target.value === "custom") return;
      target.form.requestSubmit ? target.form.requestSubmit() : target.form.submit();
    }
  });

  document.addEventListener("click", function (event) {
    const row = event.target instanceof Element ? event.target.closest("tr[data-href]") : null;
    if (!row || event.target.closest("a, button")) return;
    window.location.href = row.dataset.href;
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", render);
  } else {
    render();
  }
})();
