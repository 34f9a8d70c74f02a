// Gatehouse client-side Edge Cookie (served at GET /_ts/ec.js while the `client-side` provider
// is selected). Include it on every page: <script src="/_ts/ec.js" async></script>
//
// It computes a value in this browser, in the Edge Cookie format (64 lowercase hex digits from
// 32 random bytes, ".", 6 random [A-Za-z0-9]), and posts it to /_ts/api/v1/ec/resolve. The
// server decides, exactly as for a page request, whether this visitor may hold an Edge Cookie;
// if so, and the provider verifies the value, the response sets the HttpOnly `ts-ec` cookie. A
// browser that already holds one keeps it (the server ignores the posted value then). The value
// is never stored by this script. The outcome is dispatched as a `gatehouse:ec` event on
// `window` (detail: the HTTP status and the JSON body).
(function () {
  "use strict";
  var HEX = "0123456789abcdef";
  var ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

  function randomValue() {
    var bytes = new Uint8Array(32);
    crypto.getRandomValues(bytes);
    var out = "";
    for (var i = 0; i < bytes.length; i++) {
      out += HEX.charAt(bytes[i] >> 4) + HEX.charAt(bytes[i] & 15);
    }
    out += ".";
    var suffix = "";
    while (suffix.length < 6) {
      var more = new Uint8Array(12);
      crypto.getRandomValues(more);
      // Rejection sampling over 248 = 4 * 62 keeps the alphabet uniform.
      for (var j = 0; j < more.length && suffix.length < 6; j++) {
        if (more[j] < 248) suffix += ALNUM.charAt(more[j] % 62);
      }
    }
    return out + suffix;
  }

  function announce(status, body) {
    window.dispatchEvent(new CustomEvent("gatehouse:ec", { detail: { status: status, body: body } }));
  }

  fetch("/_ts/api/v1/ec/resolve", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ value: randomValue() })
  }).then(function (response) {
    return response.json().then(function (body) { announce(response.status, body); },
                                function () { announce(response.status, null); });
  }, function () { announce(0, null); });
})();
