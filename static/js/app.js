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

  // Relative times ("5 minutes ago", templates/_ago.html) stay true while a page stays open,
  // without reloading anything: each counts on from the server's clock when it was written
  // (data-now), so a browser whose clock is wrong still says the right thing.
  var NBSP = "\u00a0";
  var UNITS = [
    ["year", 365 * 86400], ["month", 30 * 86400], ["week", 7 * 86400],
    ["day", 86400], ["hour", 3600], ["minute", 60]
  ];
  function count(n, unit) { return n + NBSP + unit + (n === 1 ? "" : "s"); }
  // As Django's naturaltime says it, so a refreshed time reads like the one the page came with.
  function ago(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 1) return "now";
    if (seconds < 60) return seconds === 1 ? "a second ago" : seconds + " seconds ago";
    if (seconds < 3600) {
      var minutes = Math.floor(seconds / 60);
      return minutes === 1 ? "a minute ago" : minutes + " minutes ago";
    }
    if (seconds < 86400) {
      var hours = Math.floor(seconds / 3600);
      return hours === 1 ? "an hour ago" : hours + " hours ago";
    }
    for (var i = 0; i < UNITS.length; i++) {
      var first = Math.floor(seconds / UNITS[i][1]);
      if (first === 0) continue;
      var words = count(first, UNITS[i][0]);
      if (i + 1 < UNITS.length) {
        var second = Math.floor((seconds - first * UNITS[i][1]) / UNITS[i + 1][1]);
        if (second > 0) words += ", " + count(second, UNITS[i + 1][0]);
      }
      return words + " ago";
    }
    return "now";
  }
  function refreshTimes(root) {
    var now = Date.now();
    var times = (root || document).querySelectorAll("time[data-ago]");
    for (var i = 0; i < times.length; i++) {
      var time = times[i];
      // Six decimals of a second are more than Date.parse promises to read.
      var moment = Date.parse((time.getAttribute("datetime") || "").replace(/(\.\d{3})\d+/, "$1"));
      if (isNaN(moment)) continue;
      if (time.dataset.skew === undefined) {
        var written = Number(time.dataset.now) * 1000;
        time.dataset.skew = String(isNaN(written) ? 0 : written - now);
      }
      var text = ago((now + Number(time.dataset.skew) - moment) / 1000);
      if (time.textContent !== text) time.textContent = text;
    }
  }
  var TIME_REFRESH_MS = 10000;
  document.addEventListener("DOMContentLoaded", function () { refreshTimes(document); });
  // Rows a live refresh brings are measured against the server's clock at once.
  document.addEventListener("htmx:load", function (event) { refreshTimes(event.target); });
  setInterval(function () { refreshTimes(document); }, TIME_REFRESH_MS);

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

  // Copy buttons (templates/_copy.html): hidden until this script can make them work.
  function showCopyButtons(root) {
    var buttons = (root || document).querySelectorAll("button[data-copy]");
    for (var i = 0; i < buttons.length; i++) buttons[i].hidden = false;
  }
  document.addEventListener("DOMContentLoaded", function () { showCopyButtons(document); });
  document.addEventListener("htmx:load", function (event) { showCopyButtons(event.target); });
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.dataset.copy);
    var status = button.nextElementSibling;
    if (!source) return;
    function say(words) { if (status) status.textContent = words; }
    // Where the clipboard is out of reach (an http:// address, a refused permission), the
    // text is selected so one keystroke copies it.
    function selectInstead() {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      say("Selected: press Ctrl+C (⌘C on a Mac) to copy it.");
    }
    if (!navigator.clipboard) { selectInstead(); return; }
    navigator.clipboard.writeText(source.textContent.trim()).then(
      function () { say("Copied."); },
      selectInstead
    );
  });

  // The header's menus (<details>, which work alone): one open at a time, Escape or a click
  // elsewhere closes them, and Escape gives the focus back to what opened it.
  function openMenus() { return document.querySelectorAll("details.menu[open]"); }
  document.addEventListener("toggle", function (event) {
    var opened = event.target;
    if (!opened.matches || !opened.matches("details.menu") || !opened.open) return;
    var menus = openMenus();
    for (var i = 0; i < menus.length; i++) if (menus[i] !== opened) menus[i].open = false;
  }, true);
  document.addEventListener("click", function (event) {
    var menus = openMenus();
    for (var i = 0; i < menus.length; i++) if (!menus[i].contains(event.target)) menus[i].open = false;
  });

  // On a phone the header's links and menus fold behind one button (see .has-menu-button).
  var header = document.querySelector(".site-header");
  var toggle = header && header.querySelector(".menu-toggle");
  function setFolded(open) {
    header.classList.toggle("is-open", open);
    toggle.setAttribute("aria-expanded", String(open));
  }
  if (toggle) {
    header.classList.add("has-menu-button");
    toggle.addEventListener("click", function () {
      setFolded(toggle.getAttribute("aria-expanded") !== "true");
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var menus = openMenus();
    if (menus.length) {
      for (var i = 0; i < menus.length; i++) menus[i].open = false;
      menus[menus.length - 1].querySelector("summary").focus();
    } else if (toggle && toggle.getAttribute("aria-expanded") === "true") {
      setFolded(false);
      toggle.focus();
    }
  });
})();
