// Before and after on a video's page. Without this script they are two plain players; with it
// they play, pause, seek and change speed together (the original muted, so one sound plays),
// and a divider drawn over the first frame of each compares them on one picture.
(() => {
  "use strict";

  // Seconds two players may drift apart before the original is put back in step.
  const DRIFT = 0.25;

  // Events a player fires because this script moved it, not the person: counted per player
  // and swallowed, so moving one never bounces back to the other.
  function echoes() {
    const expected = new Map();
    return {
      expect(player, type) {
        const counts = expected.get(player) || {};
        counts[type] = (counts[type] || 0) + 1;
        expected.set(player, counts);
      },
      isEcho(player, type) {
        const counts = expected.get(player);
        if (counts && counts[type] > 0) {
          counts[type] -= 1;
          return true;
        }
        return false;
      },
    };
  }

  function linkPlayers(box, before, after, toggle) {
    const echo = echoes();
    const together = () => !toggle || toggle.checked;
    const wasMuted = before.muted;

    function seek(player, time) {
      // Before its metadata a player cannot seek (and says nothing): nothing to keep in step.
      if (player.readyState < 1 || Math.abs(player.currentTime - time) < 0.05) return;
      echo.expect(player, "seeked");
      player.currentTime = time;
    }

    function follow(from, to) {
      from.addEventListener("play", () => {
        if (echo.isEcho(from, "play") || !together() || !to.paused) return;
        seek(to, from.currentTime);
        echo.expect(to, "play");
        to.play().catch(() => echo.isEcho(to, "play"));
      });
      from.addEventListener("pause", () => {
        if (echo.isEcho(from, "pause") || !together() || to.paused) return;
        echo.expect(to, "pause");
        to.pause();
        seek(to, from.currentTime);
      });
      from.addEventListener("seeked", () => {
        if (echo.isEcho(from, "seeked") || !together()) return;
        seek(to, from.currentTime);
      });
      from.addEventListener("ratechange", () => {
        if (together() && to.playbackRate !== from.playbackRate) to.playbackRate = from.playbackRate;
      });
    }

    follow(before, after);
    follow(after, before);
    // The cleaned video leads: while both play, the original is kept within DRIFT of it.
    after.addEventListener("timeupdate", () => {
      if (!together() || after.paused || before.paused || before.seeking) return;
      if (Math.abs(before.currentTime - after.currentTime) > DRIFT) seek(before, after.currentTime);
    });

    function applyTogether() {
      // Two soundtracks a fraction apart are an echo: together, only the cleaned one is heard.
      before.muted = together() ? true : wasMuted;
      box.classList.toggle("compare-together", together());
    }
    if (toggle) toggle.addEventListener("change", applyTogether);
    applyTogether();
  }

  function setUpWipe(wipe) {
    const range = wipe.querySelector("input[type=range]");
    const frame = wipe.querySelector(".wipe-frame");
    if (!range || !frame) return;
    const place = () => frame.style.setProperty("--wipe", `${range.value}%`);
    range.addEventListener("input", place);
    // Dragging on the picture itself moves the divider too.
    let dragging = false;
    const moveTo = (event) => {
      const box = frame.getBoundingClientRect();
      const share = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
      range.value = String(Math.round(share * 100));
      place();
    };
    frame.addEventListener("pointerdown", (event) => {
      dragging = true;
      frame.setPointerCapture(event.pointerId);
      moveTo(event);
    });
    frame.addEventListener("pointermove", (event) => {
      if (dragging) moveTo(event);
    });
    const stop = () => {
      dragging = false;
    };
    frame.addEventListener("pointerup", stop);
    frame.addEventListener("pointercancel", stop);
    place();
    wipe.hidden = false;
  }

  function setUp(root) {
    for (const card of root.querySelectorAll(".before-after-card")) {
      if (card.dataset.compareReady) continue;
      card.dataset.compareReady = "1";
      const box = card.querySelector("[data-compare]");
      const before = card.querySelector("video.original-video");
      const after = card.querySelector("video.result-video");
      const sync = card.querySelector("[data-compare-sync]");
      if (box && before && after) {
        const toggle = sync ? sync.querySelector("input[type=checkbox]") : null;
        linkPlayers(box, before, after, toggle);
        if (sync) sync.hidden = false;
      }
      const wipe = card.querySelector("[data-wipe]");
      if (wipe) setUpWipe(wipe);
    }
  }

  document.addEventListener("DOMContentLoaded", () => setUp(document));
  // A video that finishes while its page is open arrives in a live refresh.
  document.addEventListener("htmx:load", (event) => setUp(event.target));
})();
