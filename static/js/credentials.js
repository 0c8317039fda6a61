// Credential pages: show the fields of the chosen sign-in mode, copy the webhook URL.
// Without JavaScript every field stays visible and the URL can be selected by hand.
(function () {
  "use strict";

  function applyMode(form) {
    var select = form.querySelector("select[name=auth_mode]");
    if (!select) return;
    var mode = select.value;
    form.querySelectorAll("[data-modes]").forEach(function (el) {
      el.hidden = el.dataset.modes.split(" ").indexOf(mode) === -1;
    });
  }

  function wire(root) {
    root.querySelectorAll("form.credential-form").forEach(function (form) {
      if (form.dataset.wired) return;
      form.dataset.wired = "1";
      var select = form.querySelector("select[name=auth_mode]");
      if (select) select.addEventListener("change", function () { applyMode(form); });
      applyMode(form);
    });
    root.querySelectorAll(".js-select-on-focus").forEach(function (input) {
      if (input.dataset.wired) return;
      input.dataset.wired = "1";
      input.addEventListener("focus", function () { input.select(); });
    });
    root.querySelectorAll(".js-copy").forEach(function (button) {
      if (button.dataset.wired) return;
      button.dataset.wired = "1";
      button.addEventListener("click", function () {
        var text = button.dataset.copy;
        var done = function () {
          var label = button.textContent;
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = label; }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done);
        } else {
          var input = button.parentNode.querySelector("input");
          if (input) { input.focus(); input.select(); document.execCommand("copy"); done(); }
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { wire(document); });
  document.addEventListener("htmx:afterSettle", function (event) { wire(event.target); });
})();
