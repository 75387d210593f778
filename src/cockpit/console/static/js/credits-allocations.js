// Credits & Allocations, Allocations tab: expand a group to its members, edit figures in place.
// A clicked figure becomes an input; once its value differs from the saved one the input gets its
// name (so the row's save button sends it) and the row shows "Unsaved" and a save button. Escape
// puts the saved value back. A refused save (409/422) only shows the error banner: the row keeps
// what was typed.
(function () {
  "use strict";

  const ROOT = "#credits-allocations";

  function inRoot(el) {
    return el instanceof Element && el.closest(ROOT) !== null;
  }

  function refreshRow(row) {
    let unsaved = false;
    row.querySelectorAll(".alloc-input").forEach(function (input) {
      const dirty = input.value.trim() !== input.dataset.original;
      const cell = input.closest(".alloc-cell");
      cell.classList.toggle("is-dirty", dirty);
      if (dirty) {
        input.name = input.dataset.name;
        unsaved = true;
      } else {
        input.removeAttribute("name");
        input.classList.remove("input-invalid");
      }
    });
    row.classList.toggle("is-unsaved", unsaved);
    if (!unsaved) row.classList.remove("has-error");
  }

  function openCell(cell) {
    cell.classList.add("is-open");
    const input = cell.querySelector(".alloc-input");
    input.focus();
    input.select();
  }

  function resetInput(input) {
    input.value = input.dataset.original;
    input.classList.remove("input-invalid");
    input.closest(".alloc-cell").classList.remove("is-open");
  }

  function cancelRow(row) {
    row.querySelectorAll(".alloc-input").forEach(resetInput);
    refreshRow(row);
  }

  function setOpen(group, open) {
    const toggle = group.querySelector(".alloc-toggle");
    const membersRow = group.querySelector(".alloc-members-row");
    const panel = group.querySelector(".alloc-members");
    group.classList.toggle("is-open", open);
    if (toggle) toggle.setAttribute("aria-expanded", open ? "true" : "false");
    membersRow.hidden = !open;
    // Fresh figures on every opening, unless edits inside are waiting to be saved.
    if (open && !panel.querySelector(".is-unsaved") && window.htmx) {
      window.htmx.ajax("GET", group.dataset.membersUrl, { target: panel, swap: "innerHTML" });
    }
  }

  document.addEventListener("click", function (event) {
    const target = event.target;
    if (!inRoot(target)) return;
    const row = target.closest(".alloc-row");
    if (target.closest(".alloc-cancel")) {
      cancelRow(row);
      return;
    }
    if (target.closest("#alloc-expand-all")) {
      const groups = Array.from(document.querySelectorAll(ROOT + " .alloc-group"));
      const open = groups.some(function (g) { return !g.classList.contains("is-open"); });
      groups.forEach(function (g) { if (g.classList.contains("is-open") !== open) setOpen(g, open); });
      return;
    }
    const cell = target.closest(".alloc-cell");
    if (cell && row) {
      if (!cell.classList.contains("is-open") && !target.closest("input")) openCell(cell);
      return;
    }
    if (row && row.classList.contains("alloc-member-row")) {
      row.parentElement.querySelectorAll(".is-selected").forEach(function (r) { r.classList.remove("is-selected"); });
      row.classList.add("is-selected");
      return;
    }
    if (row && row.classList.contains("alloc-group-row")) {
      if (target.closest("a, input, .alloc-save, .alloc-cancel")) return;
      const group = row.closest(".alloc-group");
      setOpen(group, !group.classList.contains("is-open"));
    }
  });

  document.addEventListener("input", function (event) {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.classList.contains("alloc-input")) return;
    input.classList.remove("input-invalid");
    refreshRow(input.closest(".alloc-row"));
  });

  document.addEventListener("keydown", function (event) {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.classList.contains("alloc-input")) return;
    const row = input.closest(".alloc-row");
    if (event.key === "Escape") {
      event.preventDefault();
      resetInput(input);
      refreshRow(row);
      const value = input.closest(".alloc-cell").querySelector(".alloc-value");
      if (value) value.focus();
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (row.classList.contains("is-unsaved")) row.querySelector(".alloc-save").click();
    }
  });

  document.addEventListener("focusout", function (event) {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.classList.contains("alloc-input")) return;
    const cell = input.closest(".alloc-cell");
    if (!cell.classList.contains("is-dirty")) cell.classList.remove("is-open");
  });

  // A refused edit (409 conflict, 422 invalid) carries the error banner: show it, keep the row.
  document.addEventListener("htmx:beforeSwap", function (event) {
    const detail = event.detail;
    if (!inRoot(detail.elt)) return;
    const status = detail.xhr.status;
    if (status === 409 || status === 422) {
      detail.shouldSwap = true;
      detail.isError = false;
      const row = detail.elt.closest(".alloc-row");
      if (row) {
        row.classList.add("has-error");
        row.querySelectorAll(".alloc-cell.is-dirty .alloc-input").forEach(function (i) { i.classList.add("input-invalid"); });
      }
    }
  });

  // Rows swapped in (a saved group row, a refreshed table) show their group's open state.
  document.addEventListener("htmx:load", function (event) {
    const el = event.detail.elt;
    if (!(el instanceof Element)) return;
    const group = el.closest(".alloc-group");
    const toggle = group && group.querySelector(".alloc-toggle");
    if (toggle) toggle.setAttribute("aria-expanded", group.classList.contains("is-open") ? "true" : "false");
    const banner = el.id === "alloc-banner" ? el.querySelector(".banner") : null;
    if (banner) banner.scrollIntoView({ block: "nearest" });
  });

  // A row replaced out of band (the group row after a member's save) keeps its own unsaved edits.
  const kept = {};
  const saving = new Set();
  document.addEventListener("htmx:beforeRequest", function (event) {
    const row = event.detail.elt instanceof Element && event.detail.elt.closest(".alloc-row");
    if (row && row.id) saving.add(row.id);
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    const row = event.detail.elt instanceof Element && event.detail.elt.closest(".alloc-row");
    if (row && row.id) saving.delete(row.id);
  });
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    const target = event.detail.target;
    if (!(target instanceof Element) || !target.classList.contains("is-unsaved") || !target.id) return;
    if (saving.has(target.id)) return; // the row being saved comes back as saved
    const values = {};
    target.querySelectorAll(".alloc-cell.is-dirty .alloc-input").forEach(function (i) { values[i.dataset.name] = i.value; });
    kept[target.id] = values;
  });
  // After the settle: htmx puts the served class attribute back on a swapped row with an id then.
  document.addEventListener("htmx:afterSettle", function () {
    Object.keys(kept).forEach(function (id) {
      const row = document.getElementById(id);
      const values = kept[id];
      delete kept[id];
      if (!row) return;
      row.querySelectorAll(".alloc-input").forEach(function (input) {
        if (input.dataset.name in values && values[input.dataset.name].trim() !== input.dataset.original) {
          input.value = values[input.dataset.name];
          input.closest(".alloc-cell").classList.add("is-open");
        }
      });
      refreshRow(row);
    });
  });

  // Refreshing the figures or leaving the page would lose unsaved edits: ask first.
  document.addEventListener("htmx:confirm", function (event) {
    if (event.detail.elt.id !== "credits-refresh" || !document.querySelector(ROOT + " .is-unsaved")) return;
    event.preventDefault();
    if (window.confirm("Some allocations are not saved yet. Reload the figures and discard them?")) {
      event.detail.issueRequest(true);
    }
  });
  window.addEventListener("beforeunload", function (event) {
    if (document.querySelector(ROOT + " .is-unsaved")) event.preventDefault();
  });
})();
