// The import progress page (admin/registry/importrun/job.html): polls the job's status
// every second, fills in the bar and the counts, goes to the result page when done.
(function () {
  "use strict";
  var box = document.getElementById("import-job");
  if (!box) { return; }
  var url = box.getAttribute("data-status-url");
  function set(id, text) { var el = document.getElementById(id); if (el) { el.textContent = text; } }
  function tick() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (s) {
        var bar = document.getElementById("import-bar");
        bar.value = s.percent;
        set("import-percent", s.percent + " %");
        set("import-stage", s.stage);
        set("import-checked", s.checked + (s.to_check ? " of " + s.to_check : ""));
        set("import-written", s.written + (s.to_write ? " of " + s.to_write : ""));
        set("import-scheduled", s.scheduled + (s.to_schedule ? " of " + s.to_schedule : ""));
        box.setAttribute("data-state", s.state);
        if (s.state === "done" && s.result_url) {
          // A moment at 100 %, so the finished bar is seen, then the result page.
          window.setTimeout(function () { window.location.assign(s.result_url); }, 600);
          return;
        }
        if (s.state === "failed") {
          var list = document.getElementById("import-job-errors");
          list.textContent = "";
          s.errors.forEach(function (e) { var li = document.createElement("li"); li.textContent = e; list.appendChild(li); });
          document.getElementById("import-failed").hidden = false;
          return;
        }
        window.setTimeout(tick, 1000);
      })
      .catch(function () { window.setTimeout(tick, 3000); });
  }
  tick();
})();
