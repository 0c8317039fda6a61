// Small progressive enhancements; everything works without JavaScript.
(function () {
  "use strict";

  function wireToasts(root) {
    root.querySelectorAll(".toast").forEach(function (toast) {
      if (toast.dataset.wired) return;
      toast.dataset.wired = "1";
      var close = toast.querySelector(".toast-close");
      if (close) close.addEventListener("click", function () { toast.remove(); });
      if (!toast.classList.contains("toast-error")) {
        setTimeout(function () { toast.classList.add("toast-hide"); }, 5000);
        setTimeout(function () { toast.remove(); }, 5600);
      }
    });
  }

  function wireAutosubmit(root) {
    root.querySelectorAll("select.js-autosubmit").forEach(function (select) {
      if (select.dataset.wired) return;
      select.dataset.wired = "1";
      select.addEventListener("change", function () { select.form.submit(); });
    });
    root.querySelectorAll(".js-hide-when-scripted").forEach(function (el) { el.hidden = true; });
  }

  // <button data-confirm="..."> asks before submitting (plain forms; htmx has hx-confirm).
  document.addEventListener("submit", function (event) {
    var submitter = event.submitter;
    var message = (submitter && submitter.dataset.confirm) || event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  }, true);

  function init(root) { wireToasts(root); wireAutosubmit(root); }
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSettle", function (event) { init(event.target); });
  document.addEventListener("htmx:oobAfterSwap", function () { init(document); });
})();
