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
