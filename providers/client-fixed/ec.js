// TEST-ONLY: the page script of the `client-fixed` provider (served at GET /_ts/ec.js while it is
// selected). Never deploy it: every browser posts the same value. It posts the provider's fixed
// value to /_ts/api/v1/ec/resolve and dispatches the outcome as a `gatehouse:ec` event on
// `window` (detail: the HTTP status and the JSON body), like the real `client-side` script.
(function () {
  "use strict";
  var FIXED_VALUE = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.TEST00";

  function announce(status, body) {
    window.dispatchEvent(new CustomEvent("gatehouse:ec", { detail: { status: status, body: body } }));
  }

  fetch("/_ts/api/v1/ec/resolve", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ value: FIXED_VALUE })
  }).then(function (response) {
    return response.json().then(function (body) { announce(response.status, body); },
                                function () { announce(response.status, null); });
  }, function () { announce(0, null); });
})();
