// The checkout page's status, polled until the order is paid, closed or expired.
(function () {
  var el = document.getElementById("topup-status");
  if (!el || el.textContent !== "pending") return;
  var resultUrl = el.dataset.resultUrl;
  var statusUrl = el.dataset.statusUrl;
  function poll() {
    fetch(statusUrl, {headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body) { setTimeout(poll, 3000); return; }
        el.textContent = body.status;
        if (body.status === "paid") { window.location.assign(resultUrl); return; }
        if (body.status === "pending") setTimeout(poll, 1500);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
