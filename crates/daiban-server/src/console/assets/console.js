// Keeps the console's pages live without a reload: every few seconds it
// fetches the page's live part again and swaps it in, and each second it
// counts down the time left before orders widen.
(function () {
  "use strict";

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = Math.max(0, Math.round((Number(el.dataset.deadline) - now) / 1000));
      var minutes = Math.floor(left / 60);
      var seconds = left % 60;
      el.textContent = minutes + "分" + (seconds < 10 ? "0" : "") + seconds + "秒";
    });
  }

  function refresh(live) {
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    fetch(url.toString(), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) {
          window.location.href = "/console/login";
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null) {
          live.innerHTML = html;
          live.dataset.updated = String(Date.now());
          tick();
        }
      })
      .catch(function () {
        // The next round tries again; a replica may be restarting.
      });
  }

  var live = document.getElementById("live");
  if (live && live.dataset.refresh) {
    var seconds = Number(live.dataset.refresh);
    window.setInterval(function () {
      if (!document.hidden) {
        refresh(live);
      }
    }, seconds * 1000);
  }
  tick();
  window.setInterval(tick, 1000);
})();
