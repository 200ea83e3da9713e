// Live progress without a page reload: poll the JSON twin of the mailbox table and update
// the cells marked data-k. The page is complete without this script; it only refreshes.
(function () {
  "use strict";
  var table = document.getElementById("mailboxes");
  var totals = document.querySelectorAll("[data-live=totals] [data-k], #summary [data-k]");
  if (!table && !totals.length) return;

  function size(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    n = Number(n) || 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return i === 0 ? n.toFixed(0) + " B" : n.toFixed(1) + " " + units[i];
  }
  function show(el, value) {
    var text = el.getAttribute("data-fmt") === "size" ? size(value) : String(value);
    if (el.textContent !== text) {
      el.textContent = text;
      el.classList.remove("flash"); void el.offsetWidth; el.classList.add("flash");
    }
  }
  function progress(run) {
    if (!run) return "";
    return run.kind + ": " + run.copied + " copied, " + size(run.bytes_copied) + ", " +
      run.messages_per_second + " msg/s";
  }
  function update(data) {
    totals.forEach(function (el) {
      var k = el.getAttribute("data-k");
      if (k in data.totals) show(el, data.totals[k]);
    });
    if (!table) return;
    data.mailboxes.forEach(function (m) {
      var row = table.querySelector('tr[data-id="' + m.id + '"]');
      if (!row) return;
      row.querySelectorAll("[data-k]").forEach(function (el) {
        var k = el.getAttribute("data-k");
        if (k === "progress") {
          var text = progress(m.running);
          if (el.textContent !== text) {
            el.innerHTML = "";
            if (text) { var s = document.createElement("span"); s.className = "live"; s.textContent = text; el.appendChild(s); }
          }
        } else if (k === "status") {
          if (el.textContent !== m.status) { el.textContent = m.status; el.className = "pill " + m.status; }
        } else if (k in m && typeof m[k] !== "object") {
          show(el, m[k]);
        }
      });
      row.classList.toggle("running", !!m.running);
    });
  }
  var delay = 1000;
  function tick() {
    fetch("/mailboxes.json", {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (data) {
        update(data);
        delay = data.totals.running_passes ? 1000 : 4000;
      })
      .catch(function () { delay = 10000; })
      .then(function () { setTimeout(tick, delay); });
  }
  setTimeout(tick, delay);

  var all = document.getElementById("all");
  if (all) all.addEventListener("change", function () {
    document.querySelectorAll('input[name="mailbox"][type=checkbox]').forEach(function (c) { c.checked = all.checked; });
  });
})();
