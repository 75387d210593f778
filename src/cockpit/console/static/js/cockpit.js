// Cockpit console behaviour: styled confirmation dialogs for destructive forms, and what the chart
// scripts (credits-chart.js, dashboard-chart.js, analytics.js) share as window.Cockpit: a theme
// colour from the stylesheet, Chart.js loaded once on demand from a canvas's data-chartjs URL (the
// vendored file), whether the person asked for reduced motion, and mounting one chart from its
// JSON figures.
(function () {
  "use strict";

  let chartJs = null;

  window.Cockpit = {
    cssVar: function (name, fallback) {
      const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
      return value || fallback;
    },
    loadChartJs: function (canvas) {
      if (window.Chart) return Promise.resolve();
      if (!chartJs) {
        chartJs = new Promise(function (resolve, reject) {
          const script = document.createElement("script");
          script.src = canvas.dataset.chartjs;
          script.onload = resolve;
          script.onerror = function () { chartJs = null; reject(new Error("Chart.js did not load")); };
          document.head.appendChild(script);
        });
      }
      return chartJs;
    },
    reducedMotion: function () {
      return Boolean(window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches);
    },
    // One chart of a page: clear() the previous one, then, when the page has the canvas and its
    // JSON figures, draw(canvas, data) once Chart.js is loaded (unless the page changed meanwhile).
    // Without Chart.js the page's own figures (a total, a table) remain.
    mountChart: function (canvasId, dataId, clear, draw) {
      clear();
      const canvas = document.getElementById(canvasId);
      const blob = document.getElementById(dataId);
      if (!canvas || !blob) return;
      let data;
      try {
        data = JSON.parse(blob.textContent);
      } catch (error) {
        return;
      }
      this.loadChartJs(canvas).then(function () {
        if (document.getElementById(canvasId) !== canvas) return;
        clear();
        draw(canvas, data);
      }, function () { /* the page's figures remain */ });
    },
  };

  function confirmThen(form, proceed) {
    const dialog = document.getElementById("confirm-dialog");
    if (!dialog || typeof dialog.showModal !== "function") {
      if (window.confirm(form.dataset.confirm)) proceed();
      return;
    }
    dialog.querySelector("#confirm-title").textContent = form.dataset.confirmTitle || "Are you sure?";
    dialog.querySelector("#confirm-message").textContent = form.dataset.confirm;
    dialog.querySelector("#confirm-ok").textContent = form.dataset.confirmLabel || "Confirm";
    dialog.returnValue = "";
    dialog.addEventListener("close", function onClose() {
      dialog.removeEventListener("close", onClose);
      if (dialog.returnValue === "confirm") proceed();
    });
    dialog.showModal();
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm || form.dataset.confirmed) return;
    event.preventDefault();
    confirmThen(form, function () {
      form.dataset.confirmed = "1";
      form.requestSubmit ? form.requestSubmit() : form.submit();
    });
  }, true);
})();
