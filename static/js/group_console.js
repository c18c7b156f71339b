/* The experimenter console: renders each group.state snapshot and sends commands
   over the experimenter socket; notes autosave through a small POST endpoint. */
(function () {
  "use strict";
  var root = document.getElementById("console");
  if (!root || !window.EnsembleProtocol) return;
  var P = window.EnsembleProtocol;
  var $ = function (sel) { return root.querySelector(sel); };
  var current = JSON.parse(document.getElementById("initial-state").textContent);

  function text(el, value) { if (el) el.textContent = value; }
  function cell(row, value) { var td = document.createElement("td"); td.textContent = value; row.appendChild(td); return td; }

  function render(s) {
    current = s;
    text($("[data-phase]"), s.phase);
    text($("[data-step]"), s.step);
    var phaseClass = {waiting: "secondary", running: "success", paused: "warning", ended: "dark", aborted: "danger"};
    $("[data-phase]").className = "ms-auto badge fs-6 text-bg-" + (phaseClass[s.phase] || "secondary");
    var live = s.phase === "running" || s.phase === "paused";
    var over = s.phase === "ended" || s.phase === "aborted";
    var enable = {
      start: s.phase === "waiting",
      advance: s.phase === "running" && s.all_responded,
      "advance-anyway": s.phase === "running" && !s.all_responded,
      pause: s.phase === "running",
      resume: s.phase === "paused",
      exit_loop: live && !s.exit_loop,
      end: live,
      abort: !over,
      set_context: !over
    };
    root.querySelectorAll("[data-cmd]").forEach(function (b) { b.disabled = !enable[b.dataset.cmd]; });
    text($("[data-ready]"), s.ready + " of " + s.active + " ready" + (s.size ? " (expected " + s.size + ")" : "") +
      (s.exit_loop ? " · loop exit signalled" : ""));
    text($("[data-shared]"), JSON.stringify(s.shared_params, null, 2));
    text($("[data-context]"), JSON.stringify(s.context, null, 2));
    showStoreDown(!!s.context_store_down);
    renderLog(s.step_log);
    var body = $("[data-participants]");
    body.innerHTML = "";
    if (!s.participants.length) {
      var empty = document.createElement("tr");
      cell(empty, "Nobody yet.").colSpan = 7;
      body.appendChild(empty);
    }
    s.participants.forEach(function (p) {
      var tr = document.createElement("tr");
      tr.dataset.participant = p.id;
      if (p.status === "kicked") tr.className = "text-decoration-line-through text-body-secondary";
      cell(tr, p.id).className = "font-monospace";
      var dot = cell(tr, p.connected ? "● online" : "○ offline");
      dot.className = p.connected ? "text-success" : "text-body-secondary";
      cell(tr, p.status);
      cell(tr, p.form || "–");
      cell(tr, p.responded_step === null ? "–" : p.responded_step);
      var ack = cell(tr, p.behind ? "behind (v" + p.acked_version + ")" : "up to date");
      ack.className = p.behind ? "text-warning-emphasis" : "text-success";
      var actions = cell(tr, "");
      if (p.status !== "kicked" && !over) {
        var kick = document.createElement("button");
        kick.className = "btn btn-sm btn-outline-danger";
        kick.textContent = "Kick";
        kick.addEventListener("click", function () {
          if (window.confirm("Remove " + p.id + " from the group session?")) send(P.msg.kick(p.id));
        });
        actions.appendChild(kick);
      }
      body.appendChild(tr);
    });
  }

  function two(n) { return (n < 10 ? "0" : "") + n; }
  function clock(ms) { var d = new Date(ms); return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds()); }

  function renderLog(entries) {
    var list = $("[data-step-log]");
    if (!list || !entries) return;
    list.innerHTML = "";
    if (!entries.length) {
      var none = document.createElement("li");
      none.className = "text-body-secondary";
      none.textContent = "Nothing yet.";
      list.appendChild(none);
    }
    entries.forEach(function (e) {
      var li = document.createElement("li");
      li.dataset.logEntry = e.action;
      li.textContent = clock(e.at_ms) + " · " + e.action + " · step " + e.step + (e.by ? " · " + e.by : "");
      list.appendChild(li);
    });
  }

  function showError(message) { text($("[data-error]"), message || ""); }

  // The context store's notice: from each snapshot, and asked every 5 s (while Redis is
  // down no snapshot arrives).
  function showStoreDown(down) { var el = $("[data-store-down]"); if (el) el.hidden = !down; }
  window.setInterval(function () {
    fetch(root.dataset.storeUrl, {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) { if (body) showStoreDown(body.down); })
      .catch(function () {});
  }, 5000);

  var socket = new P.GroupSocket(root.dataset.wsPath, {
    onState: function (s) { showError(""); render(s); },
    onError: function (e) { showError(e.message + " (" + e.code + ")"); },
    onStatus: function (status) {
      var badge = $("[data-link]");
      badge.textContent = status;
      badge.className = "badge " + (status === "online" ? "text-bg-success" : "text-bg-warning");
    },
    onClose: function (code) { showError("Disconnected (" + code + "). Reload the page to reconnect."); }
  });

  function send(message) {
    if (!socket.send(message)) showError("Not connected; try again in a moment.");
  }

  var confirmations = {
    "advance-anyway": "Not everyone has answered. Advance anyway?",
    end: "End the group session for everyone?",
    abort: "Abort the group session? Participants will be stopped.",
    exit_loop: "Signal the participants to leave the loop after this step?"
  };

  root.querySelectorAll("[data-cmd]").forEach(function (button) {
    button.addEventListener("click", function () {
      var cmd = button.dataset.cmd;
      if (confirmations[cmd] && !window.confirm(confirmations[cmd])) return;
      if (cmd === "advance" || cmd === "advance-anyway") return send(P.msg.advance(current.step));
      if (cmd === "set_context") {
        var patch;
        try { patch = JSON.parse(document.getElementById("context-patch").value || "{}"); } catch (e) {
          return showError("The patch is not valid JSON.");
        }
        if (!patch || typeof patch !== "object" || Array.isArray(patch)) return showError("The patch must be a JSON object.");
        return send(P.msg.setContext(patch));
      }
      send({type: cmd});
    });
  });

  // Notes: autosave a second after typing stops.
  var notes = $("[data-notes]"), timer = null;
  var csrf = root.querySelector("input[name=csrfmiddlewaretoken]").value;
  notes.addEventListener("input", function () {
    text($("[data-notes-status]"), "editing…");
    window.clearTimeout(timer);
    timer = window.setTimeout(function () {
      var body = new URLSearchParams({notes: notes.value});
      fetch(root.dataset.notesUrl, {method: "POST", body: body, headers: {"X-CSRFToken": csrf}, credentials: "same-origin"})
        .then(function (r) { text($("[data-notes-status]"), r.ok ? "saved" : "not saved (" + r.status + ")"); })
        .catch(function () { text($("[data-notes-status]"), "not saved (offline)"); });
    }, 1000);
  });

  render(current);
})();
