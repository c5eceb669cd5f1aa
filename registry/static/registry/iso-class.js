// The ISO 14155 class on the adverse-event form, updated as the nurse ticks "serious" or
// changes relatedness and "anticipated". The table comes from the server
// (admin/events.py iso_class_table, built with models.events.iso14155_class), so the
// rule stays in one place; this only looks it up.
(function () {
  "use strict";
  function setUp() {
    var out = document.getElementById("iso-class-live");
    if (!out) { return; }
    var table = JSON.parse(out.dataset.table);
    var related = JSON.parse(out.dataset.related);
    function field(id) { return document.getElementById(id); }
    function isRelated(id) { var el = field(id); return !!el && related.indexOf(el.value) >= 0; }
    function update() {
      var serious = field("id_serious");
      var anticipated = field("id_anticipated");
      var key = [serious && serious.checked ? 1 : 0,
                 isRelated("id_device_relatedness") || isRelated("id_procedure_relatedness") ? 1 : 0,
                 anticipated && anticipated.value === "false" ? 1 : 0].join("|");
      var cls = table[key];
      out.textContent = cls.text;
      out.className = cls.serious ? "registry-badge iso-serious" : "";
      out.style.cssText = cls.serious
        ? "background:#ba2121;color:#fff;padding:1px 6px;border-radius:3px;font-weight:bold" : "";
      out.dataset.code = cls.code;
    }
    ["id_serious", "id_device_relatedness", "id_procedure_relatedness", "id_anticipated"]
      .forEach(function (id) {
        var el = field(id);
        if (el) { el.addEventListener("change", update); }
      });
    update();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
}());
