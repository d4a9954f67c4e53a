// The console works without this file. With it: the deliveries log refreshes itself
// while "Live" is ticked (the page is fetched again and its rows swapped in).
(function () {
  "use strict";
  var box = document.querySelector("[data-live-target]");
  if (!box) return;
  var timer = null;
  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var id = box.getAttribute("data-live-target");
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(id);
        var current = document.getElementById(id);
        if (fresh && current) current.replaceWith(fresh);
      })
      .catch(function () { /* keep the rows shown; the next tick tries again */ });
  }
  box.addEventListener("change", function () {
    if (timer) { clearInterval(timer); timer = null; }
    if (box.checked) { refresh(); timer = setInterval(refresh, 5000); }
  });
})();
