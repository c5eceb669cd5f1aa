// Warn before the idle sign-out (REGISTRY_SESSION_IDLE_MINUTES), and go to the login
// page when it has happened. The server decides: before warning, the page asks
// /account/session/ (which is not activity), since another tab may have been busy.
(function () {
  "use strict";
  var script = document.currentScript;
  var data = script.dataset;
  var idle = Number(data.idleSeconds) * 1000;
  var warning = Number(data.warningSeconds) * 1000;
  var deadline = Date.now() + idle;
  var banner = null;
  var asking = false;

  function goToLogin() {
    var next = window.location.pathname + window.location.search;
    window.location.href = data.loginUrl + "?next=" + encodeURIComponent(next);
  }

  function showBanner(secondsLeft) {
    if (!banner) {
      banner = document.createElement("div");
      banner.id = "session-warning";
      banner.setAttribute("role", "alert");
      banner.className = "messagelist";
      banner.style.cssText = "position:fixed;top:0;left:0;right:0;z-index:1000;margin:0;" +
        "padding:10px 40px;background:#ffc;color:#333;border-bottom:1px solid #cc9;";
      banner.innerHTML = '<span id="session-warning-text"></span> ' +
        '<button type="button" id="session-stay">Stay signed in</button>';
      document.body.appendChild(banner);
      banner.querySelector("#session-stay").addEventListener("click", stay);
    }
    var minutes = Math.floor(secondsLeft / 60);
    var seconds = String(secondsLeft % 60).padStart(2, "0");
    banner.querySelector("#session-warning-text").textContent =
      "You will be signed out in " + minutes + ":" + seconds + " for inactivity.";
  }

  function hideBanner() {
    if (banner) { banner.remove(); banner = null; }
  }

  function update(answer) {
    if (!answer.signed_in) { goToLogin(); return; }
    deadline = Date.now() + answer.idle_seconds_left * 1000;
    if (answer.idle_seconds_left * 1000 <= warning) { showBanner(answer.idle_seconds_left); }
    else { hideBanner(); }
  }

  function ask(url, options) {
    asking = true;
    return fetch(url, Object.assign({credentials: "same-origin"}, options))
      .then(function (response) { return response.json(); })
      .then(update)
      .catch(function () { /* offline: try again at the next tick */ })
      .then(function () { asking = false; });
  }

  function stay() {
    ask(data.keepaliveUrl, {method: "POST", headers: {"X-CSRFToken": data.csrfToken}});
  }

  setInterval(function () {
    if (!asking && deadline - Date.now() <= warning) { ask(data.statusUrl); }
  }, 1000);
})();
