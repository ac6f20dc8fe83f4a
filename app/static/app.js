// Small progressive enhancements; every page works without this file.
document.addEventListener("click", function (e) {
  var btn = e.target.closest("[data-copy]");
  if (!btn) return;
  var text = document.getElementById(btn.dataset.copy);
  if (!text) return;
  var value = text.value !== undefined ? text.value : text.innerText;
  var done = function () { btn.dataset.copied = "1"; setTimeout(function () { delete btn.dataset.copied; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(value).then(done, function () { fallback(text, done); });
  } else { fallback(text, done); }
});
function fallback(el, done) {
  var ta = document.createElement("textarea");
  ta.value = el.value !== undefined ? el.value : el.innerText;
  ta.setAttribute("readonly", ""); ta.style.position = "fixed"; ta.style.opacity = "0";
  document.body.appendChild(ta); ta.select();
  try { document.execCommand("copy"); done(); } finally { document.body.removeChild(ta); }
}
// Staff app: an "undo" strip leaves by itself after a few seconds (data-expire, in seconds).
document.addEventListener("htmx:load", function (e) {
  var root = e.detail.elt;
  var found = root.matches && root.matches("[data-expire]") ? [root] : [];
  if (root.querySelectorAll) found = found.concat(Array.prototype.slice.call(root.querySelectorAll("[data-expire]")));
  found.forEach(function (el) {
    setTimeout(function () { if (el.isConnected) el.remove(); }, Number(el.dataset.expire) * 1000);
  });
});
// Staff app: the contact button tapped last is the channel the outcome is logged with.
document.addEventListener("click", function (e) {
  var link = e.target.closest("[data-channel]");
  var card = link && link.closest(".fu-card");
  var field = card && card.querySelector("form.outcome input[name=channel]");
  if (field) field.value = link.dataset.channel;
});
