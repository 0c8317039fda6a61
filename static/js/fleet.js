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
