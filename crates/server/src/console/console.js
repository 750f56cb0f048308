// Logbook console: small progressive enhancements. Every page works without this file.
"use strict";
(function () {
  // Protected users import: read a picked CSV file into the textarea that the form posts.
  var file = document.getElementById("p-file");
  var area = document.getElementById("p-csv");
  if (file && area) {
    file.addEventListener("change", function () {
      var f = file.files && file.files[0];
      if (!f) return;
      f.text().then(function (text) { area.value = text; });
    });
  }
})();

(function () {
  // Audit Log: show that a new page is on its way; close the action menu with Escape.
  var form = document.querySelector("form.filters");
  if (form) {
    form.addEventListener("submit", function () {
      document.body.classList.add("loading");
      form.setAttribute("aria-busy", "true");
    });
  }
  document.querySelectorAll("details.multi").forEach(function (d) {
    d.addEventListener("keydown", function (e) {
      if (e.key === "Escape") { d.removeAttribute("open"); d.querySelector("summary").focus(); }
    });
  });
  document.addEventListener("click", function (e) {
    document.querySelectorAll("details.multi[open]").forEach(function (d) {
      if (!d.contains(e.target)) d.removeAttribute("open");
    });
  });
})();
