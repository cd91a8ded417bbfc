// Live pages: the application's events over the WebSocket stream, each refreshing the page's
// live regions (htmx fetches the page again and swaps each region in), with no reload.
// The stream is authorised by the session cookie the browser sends with the handshake; no
// token is ever in a URL or in storage.
(function () {
  "use strict";
  var body = document.body;
  var appId = body.dataset.streamApp;
  if (!appId) return;
  // The console's pages use the API's stream; the app portal's, its own (where its cookie goes).
  var streamRoot = body.dataset.streamRoot || "/api/v1";
  var onlyMessage = body.dataset.streamMessage;
  var onlyEndpoint = body.dataset.streamEndpoint;
  var onlyDestination = body.dataset.streamDestination;
  var status = document.getElementById("live-status");
  var liveText = body.dataset.liveText || "live";
  var retryDelay = 500;
  var pending = false;

  function say(text) { if (status) status.textContent = text; }

  function refresh() {
    if (pending) return; // a burst of events makes one refresh
    pending = true;
    window.setTimeout(function () {
      pending = false;
      if (!window.htmx) return;
      document.querySelectorAll('[hx-trigger="hookpost-refresh"]').forEach(function (region) {
        window.htmx.trigger(region, "hookpost-refresh");
      });
    }, 250);
  }

  function concerned(event) {
    if (event.type.indexOf("stream.") === 0) return event.type !== "stream.hello";
    // A destination's batches concern its own page alone, and that page nothing else.
    if (onlyDestination) return event.destinationId === onlyDestination;
    if (event.destinationId) return false;
    if (onlyMessage && event.msgId && event.msgId !== onlyMessage) return false;
    if (onlyEndpoint && event.endpointId && event.endpointId !== onlyEndpoint) return false;
    if (onlyEndpoint && event.type === "message.created") return false;
    return true;
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    var socket = new WebSocket(scheme + "//" + window.location.host + streamRoot + "/app/" + encodeURIComponent(appId) + "/stream");
    socket.onmessage = function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (error) { return; }
      if (event.type === "stream.hello") {
        retryDelay = 500;
        say(liveText);
        body.dataset.live = "true";
        refresh(); // whatever happened between rendering the page and subscribing
        return;
      }
      if (concerned(event)) refresh();
    };
    socket.onclose = function (event) {
      body.dataset.live = "false";
      // The console's session, or the portal's, has ended (or the page is of another origin).
      if (event.code === 4401) { say("session ended: reload the page"); return; }
      if (event.code === 4403 || event.code === 4404) { say("not live: no such application"); return; }
      say("reconnecting…");
      window.setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    };
  }

  connect();
})();

// Filters without a form (a read-only portal has no forms at all): the button, or Enter in one of
// the fields, opens the page with the fields that are filled in, as a GET form would.
(function () {
  "use strict";
  document.querySelectorAll("[data-filter]").forEach(function (box) {
    function apply() {
      var query = new URLSearchParams();
      box.querySelectorAll("input[name], select[name]").forEach(function (field) {
        if (field.value) query.append(field.name, field.value);
      });
      var search = query.toString();
      window.location.assign(box.dataset.filter + (search ? "?" + search : ""));
    }
    box.addEventListener("click", function (event) {
      if (event.target.closest("[data-filter-apply]")) apply();
    });
    box.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && event.target.matches("input[name]")) {
        event.preventDefault();
        apply();
      }
    });
  });
})();
