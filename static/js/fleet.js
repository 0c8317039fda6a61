// Fleet pages: confirmation dialogs and "select all" for bulk actions (no inline handlers: CSP).
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-dialog-open]");
    if (opener) {
      var dialog = document.getElementById(opener.dataset.dialogOpen);
      if (dialog && typeof dialog.showModal === "function") {
        event.preventDefault();
        if (!dialog.open) dialog.showModal();
        // The safe choice first ([autofocus], e.g. Cancel): one stray Enter must not defleet.
        var first = dialog.querySelector("[autofocus]") || dialog.querySelector("button, [href]");
        if (first) first.focus();
      }
      return;
    }
    var closer = event.target.closest("[data-dialog-close]");
    if (closer) {
      var target = document.getElementById(closer.dataset.dialogClose);
      if (target) {
        event.preventDefault();
        target.close();
      }
    }
  });

  // A live update re-renders the defleet dialog for the current status; while a person has it
  // open, the open one stays (its answer re-renders it once it is closed).
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail && event.detail.target;
    var open = target && target.querySelector && target.querySelector("dialog[open]");
    if (open) event.detail.shouldSwap = false;
  });

  // Opened by the link without JavaScript (?confirm=defleet renders it open, in the flow of the
  // page): with JavaScript it is made modal (focus kept inside, Esc closes it).
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("dialog[open]").forEach(function (dialog) {
      if (typeof dialog.showModal !== "function") return;
      dialog.close();
      dialog.showModal();
      var first = dialog.querySelector("[autofocus]") || dialog.querySelector("button, [href]");
      if (first) first.focus();
    });
  });

  // After an htmx request sent from inside a dialog (e.g. "Yes, defleet"), close the dialog.
  document.addEventListener("htmx:afterRequest", function (event) {
    var dialog = event.target.closest && event.target.closest("dialog");
    if (dialog && dialog.open) dialog.close();
  });

  document.addEventListener("change", function (event) {
    var all = event.target.closest(".js-select-all");
    if (!all) return;
    var table = all.closest("table");
    if (!table) return;
    table.querySelectorAll("input.row-select").forEach(function (box) { box.checked = all.checked; });
  });
})();

// The fleet page's one poll (docs/architecture.md, "Live updates"): once per interval it sends
// the rows on screen with their versions and gets back, out of band, only the rows that moved,
// and the counters and summary when they moved. Faster still while changes flow (a row or a
// counter moved within the last few seconds: more are likely on their way), fast while the
// page is in use; after a quiet minute the interval doubles up to the slow one; a user action
// makes it fast again. A hidden tab does not poll; it asks at once when it is shown again.
(function () {
  "use strict";
  var timer = null;
  var busy = false;
  var interval = 0;
  var lastChange = Date.now();
  var lastMoved = 0;  // when an answer last brought a change (not a user action)

  function state() { return document.getElementById("fleet-live"); }
  function number(live, name, fallback) {
    var value = parseInt(live.dataset[name], 10);
    return isNaN(value) ? fallback : value;
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = null;
    var live = state();
    if (!live || document.hidden || typeof htmx === "undefined") return;
    timer = setTimeout(tick, delay === undefined ? interval : delay);
  }

  function tick() {
    var live = state();
    if (!live || document.hidden) return;
    if (busy) { schedule(); return; }
    var rows = [];
    var selected = [];
    document.querySelectorAll("#fleet-table tr[data-row]").forEach(function (tr) {
      rows.push(tr.dataset.row + "." + tr.dataset.v);
      var box = tr.querySelector("input.row-select");
      if (box && box.checked) selected.push(tr.dataset.row);
    });
    var url = live.dataset.url;
    url += (url.indexOf("?") < 0 ? "?" : "&") + "rows=" + rows.join(",") +
      "&sel=" + selected.join(",") + "&c=" + encodeURIComponent(live.dataset.counters || "");
    busy = true;
    htmx.ajax("GET", url, { target: "#fleet-live", swap: "outerHTML" }).then(answered, answered);
  }

  function answered() {
    busy = false;
    var live = state();
    if (!live) return;
    var fast = number(live, "fast", 1500);
    var flowing = number(live, "flowing", fast);
    var now = Date.now();
    if (number(live, "changed", 0) > 0) {
      lastChange = lastMoved = now;
      interval = flowing;
    } else if (now - lastChange > number(live, "quiet", 60000)) {
      interval = Math.min(Math.max(interval, fast) * 2, number(live, "slow", 30000));
    } else if (now - lastMoved < number(live, "flowingFor", 10000)) {
      interval = flowing;
    } else {
      interval = fast;
    }
    schedule();
  }

  function wake() {
    var live = state();
    if (!live) return;
    var fast = number(live, "fast", 1500);
    lastChange = Date.now();
    if (interval > fast || !timer) { interval = fast; schedule(); }
  }

  function start() {
    var live = state();
    if (!live) return;
    interval = number(live, "fast", 1500);
    lastChange = Date.now();
    schedule();
  }

  document.addEventListener("DOMContentLoaded", start);
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { clearTimeout(timer); timer = null; return; }
    lastChange = Date.now();
    var live = state();
    if (live) { interval = number(live, "fast", 1500); schedule(0); }
  });
  ["click", "keydown", "input"].forEach(function (name) {
    document.addEventListener(name, wake, { passive: true });
  });
  // The filter form and header links replace the table (and this page's state element).
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target && event.target.id === "fleet-table") wake();
  });
})();
