// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  // The viewer's time zone, so the server writes times in it (config/viewer_timezone.py).
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf("tz=" + encodeURIComponent(zone)) === -1) {
      document.cookie = "tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax";
    }
  } catch (e) { /* an old browser: times stay in UTC, labelled as such */ }

  // Confirmations: a link with data-confirm opens its confirmation page's form in a dialog.
  // Without JavaScript the link simply opens that page.
  var dialog = null;
  function confirmDialog() {
    if (!dialog) {
      dialog = document.createElement("dialog");
      dialog.className = "confirm-dialog";
      dialog.setAttribute("aria-labelledby", "confirm-title");
      document.body.appendChild(dialog);
      dialog.addEventListener("click", function (event) {
        if (event.target.closest("[data-dialog-close]")) {
          event.preventDefault();
          dialog.close();
        }
      });
    }
    return dialog;
  }
  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-confirm]");
    if (!link || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    fetch(link.href, { headers: { "X-Confirm-Dialog": "1" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status);
        return response.text();
      })
      .then(function (html) {
        var box = confirmDialog();
        box.innerHTML = html;
        box.showModal();
        var first = box.querySelector("[autofocus], button, input");
        if (first) first.focus();
      })
      .catch(function () { window.location.href = link.href; });
  });
})();
