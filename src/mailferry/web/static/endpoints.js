/* mailferry: the endpoint form shows only the fields of the login chosen. Without this script
   every field shows, and the server refuses fields of another login than the one chosen. The
   hidden fieldsets are disabled too, so what was typed there is not sent. */
(function () {
  "use strict";
  var select = document.getElementById("ep-login");
  if (!select) {
    return;
  }
  var sets = document.querySelectorAll("fieldset[data-login]");
  function show() {
    sets.forEach(function (set) {
      var chosen = set.getAttribute("data-login") === select.value;
      set.hidden = !chosen;
      set.disabled = !chosen;
    });
  }
  document.querySelectorAll(".nojs").forEach(function (element) {
    element.hidden = true;
  });
  select.addEventListener("change", show);
  show();
})();
