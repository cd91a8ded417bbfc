// Opening a portal link: its access key is in the fragment (#key=...), which browsers never
// send to a server. Take it out of the address bar and history first, then hand it to the
// form, whose POST trades it for an HttpOnly session cookie. The key is never stored.
(function () {
  "use strict";
  var form = document.getElementById("open-portal");
  var hash = window.location.hash;
  if (!form || !hash) return;
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  var match = /(?:^#|&)key=([^&]+)/.exec(hash);
  if (!match) return;
  form.elements.namedItem("token").value = decodeURIComponent(match[1]);
  form.submit();
})();
