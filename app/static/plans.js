// Plan builder: variable chips insert {variable} at the cursor of the last focused script.
(function () {
  var last = null;
  document.addEventListener("focusin", function (e) {
    if (e.target.matches && e.target.matches("textarea[data-script]")) last = e.target;
  });
  document.addEventListener("click", function (e) {
    var chip = e.target.closest && e.target.closest(".var-chip");
    if (!chip) return;
    var area = last || document.querySelector("textarea[data-script]");
    if (!area) return;
    var text = chip.getAttribute("data-var");
    var start = area.selectionStart || 0, end = area.selectionEnd || 0;
    if (!area.value && area.placeholder) area.value = area.placeholder;
    if (document.activeElement !== area && last === null) start = end = area.value.length;
    area.setRangeText(text, start, end, "end");
    area.focus();
    area.dispatchEvent(new Event("change", { bubbles: true }));
  });
})();
