// The bell's poll (htmx, every few seconds as the template says) pauses while the tab is hidden,
// and asks at once when the tab is shown again.
(function () {
  "use strict";
  document.addEventListener("htmx:confirm", function (event) {
    if (event.target && event.target.id === "bell" && document.hidden) event.preventDefault();
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) document.dispatchEvent(new CustomEvent("fleetportal:visible"));
  });
  // Settings page: fill the time zone from the browser's on request.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".js-browser-zone");
    if (!button) return;
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    var select = document.getElementById(button.dataset.target);
    if (zone && select && select.querySelector('option[value="' + zone + '"]')) select.value = zone;
  });
})();
