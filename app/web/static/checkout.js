// The checkout page's status, polled until the order is paid, closed or expired. The time left
// counts down; at the expiry the page asks once more, then stops. A lost connection is said on
// the page and retried less and less often (up to every 30 s), never past the expiry.
(function () {
  var el = document.getElementById("topup-status");
  if (!el || el.textContent !== "pending") return;
  var statusUrl = el.dataset.statusUrl;
  var resultUrl = el.dataset.resultUrl;
  var left = document.getElementById("time-left");
  var deadline = Date.now() + 1000 * Number(left ? left.dataset.secondsLeft : 0);
  var FIRST_DELAY = 1500, MAX_DELAY = 30000, REQUEST_TIMEOUT = 10000;
  // The server's clock decides; it may say "pending" for a moment after ours says expired.
  var GRACE = 15000;
  var delay = FIRST_DELAY, timer = null, ticker = null, finished = false;

  function show(id, visible) {
    var node = document.getElementById(id);
    if (node) node.hidden = !visible;
  }

  function format(seconds) {
    var h = Math.floor(seconds / 3600), m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    var mm = h ? (m < 10 ? "0" : "") + m : String(m);
    return (h ? h + ":" : "") + mm + ":" + (s < 10 ? "0" : "") + s;
  }

  function tick() {
    var seconds = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    if (left) left.textContent = format(seconds);
    if (seconds === 0) {
      clearInterval(ticker);
      // Ask at once whether it was paid at the last moment, instead of waiting for a backed-off retry.
      schedule(0);
    }
  }

  function finish(status) {
    finished = true;
    clearTimeout(timer);
    clearInterval(ticker);
    el.textContent = status;
    show("note-offline", false);
    if (status !== "pending" && status !== "paid") show("qr-block", false);
    show("note-" + status, true);
    if (status === "paid") window.location.assign(resultUrl);
  }

  function schedule(ms) {
    if (finished) return;
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  function failed() {
    if (Date.now() >= deadline) { finish("expired"); return; }
    show("note-offline", true);
    delay = Math.min(delay * 2, MAX_DELAY);
    schedule(Math.min(delay, Math.max(0, deadline - Date.now())));
  }

  function poll() {
    if (finished) return;
    var controller = window.AbortController ? new AbortController() : null;
    var abort = controller ? setTimeout(function () { controller.abort(); }, REQUEST_TIMEOUT) : null;
    fetch(statusUrl, {headers: {"Accept": "application/json"}, cache: "no-store",
                      signal: controller ? controller.signal : undefined})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        clearTimeout(abort);
        if (!body || typeof body.status !== "string") { failed(); return; }
        show("note-offline", false);
        delay = FIRST_DELAY;
        if (body.status !== "pending") { finish(body.status); return; }
        if (Date.now() >= deadline + GRACE) { finish("expired"); return; }
        schedule(delay);
      })
      .catch(function () { clearTimeout(abort); failed(); });
  }

  ticker = setInterval(tick, 1000);
  schedule(1000);
})();
