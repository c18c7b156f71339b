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

  function people(s) { return s.participants.filter(function (p) { return p.status !== "kicked"; }); }
  // Everyone still in the session has finished their run: nothing is left to advance.
  function allFinished(s) {
    var inSession = people(s);
    return inSession.length > 0 && inSession.every(function (p) { return p.status === "finished"; });
  }
  // When the current step began (the newest start/advance entry of the step log).
  function stepStartMs(s) {
    var entry = (s.step_log || []).filter(function (e) {
      return e.step === s.step && (e.action === "started" || e.action === "advanced");
    })[0];
    return entry ? entry.at_ms : null;
  }

  function render(s) {
    current = s;
    var over = s.phase === "ended" || s.phase === "aborted";
    var done = !over && allFinished(s);
    // Everyone finished: the badge says so beside the line (the phase is still "running").
    text($("[data-phase]"), done ? "all finished" : s.phase);
    text($("[data-step]"), s.step);
    var phaseClass = {waiting: "secondary", running: "success", paused: "warning", ended: "dark", aborted: "danger"};
    $("[data-phase]").className = "ms-auto badge fs-6 text-bg-" + (done ? "info" : phaseClass[s.phase] || "secondary");
    $("[data-phase]").dataset.phaseName = s.phase;
    renderControls(s, over, done);
    text($("[data-ready]"), statusLine(s, over, done));
    $("[data-all-finished]").classList.toggle("d-none", !done);
    text($("[data-shared]"), compactJson(s.shared_params));
    text($("[data-context]"), compactJson(s.context));
    showStoreDown(!!s.context_store_down);
    renderLog(s.step_log);
    renderOnsets(s.onsets || []);
    renderParticipants(s, over);
    root.dispatchEvent(new CustomEvent("ensemble:state", {detail: s}));  // console_flow.js
  }

  function renderControls(s, over, done) {
    var live = s.phase === "running" || s.phase === "paused";
    var enable = {
      start: s.phase === "waiting",
      advance: s.phase === "running" && s.all_responded && !done,
      "advance-anyway": s.phase === "running" && !s.all_responded && !done,
      pause: s.phase === "running" && !done,
      resume: s.phase === "paused",
      exit_loop: live && !s.exit_loop && !done,
      end: live,
      abort: !over,
      set_context: !over
    };
    root.querySelectorAll("[data-cmd]").forEach(function (b) { b.disabled = !enable[b.dataset.cmd]; });
    ["start", "advance", "advance-anyway", "pause", "resume", "exit_loop"].forEach(function (cmd) {
      $('[data-cmd="' + cmd + '"]').classList.toggle("d-none", done);
    });
    var end = $('[data-cmd="end"]');
    end.classList.toggle("btn-success", done);
    end.classList.toggle("btn-outline-danger", !done);
  }

  // Indented JSON with short arrays of plain values kept on one line ([0, "P55XWZV", 4]).
  function compactJson(value) {
    return JSON.stringify(value, null, 2).replace(/\[\s+([^\[\]{}]*?)\s+\]/g, function (all, inner) {
      return "[" + inner.replace(/,\n\s*/g, ", ") + "]";
    });
  }

  // Per step: how many live pages reported its onset, the spread (last minus first) and who was late.
  function renderOnsets(onsets) {
    var body = $("[data-onsets]");
    if (!body) return;
    body.innerHTML = "";
    onsets.forEach(function (o) {
      var row = document.createElement("tr");
      row.dataset.onsetStep = o.step;
      cell(row, o.step);
      cell(row, o.reported);
      cell(row, o.spread_ms + " ms");
      cell(row, o.late.length ? o.late.join(", ") : "—").classList.toggle("text-danger", o.late.length > 0);
      body.appendChild(row);
    });
  }

  function statusLine(s, over, done) {
    if (over) return s.phase === "ended" ? "The session has ended." : "The session was aborted.";
    if (done) return "All " + people(s).length + " finished.";
    if (s.phase === "waiting") return s.ready + " of " + s.active + " ready" + (s.size ? " (expected " + s.size + ")" : "");
    return s.ready + " of " + s.active + " answered step " + s.step + (s.exit_loop ? " · loop exit signalled" : "");
  }

  function statusLabel(s, p) {
    // "waiting" is the waiting screen before the start; on a step it means "not answered yet"
    var onStep = s.phase === "running" || s.phase === "paused";
    return onStep && p.status === "waiting" && p.responded_step !== s.step ? "answering" : p.status;
  }

  function renderParticipants(s, over) {
    var body = $("[data-participants]");
    body.innerHTML = "";
    if (!s.participants.length) {
      var empty = document.createElement("tr");
      cell(empty, "Nobody yet.").colSpan = 7;
      body.appendChild(empty);
    }
    var since = s.phase === "running" ? stepStartMs(s) : null;
    s.participants.forEach(function (p) {
      body.appendChild(participantRow(s, p, over, since));
      if (openAnswers[p.id]) body.appendChild(answersRow(p.id));
    });
  }

  function participantRow(s, p, over, since) {
    var tr = document.createElement("tr");
    var gone = p.status === "kicked", finished = p.status === "finished";
    tr.dataset.participant = p.id;
    if (gone) tr.className = "text-decoration-line-through text-body-secondary";
    cell(tr, p.id).className = "font-monospace";
    var dot = cell(tr, p.connected ? "● online" : "○ offline");
    dot.className = p.connected ? "text-success" : "text-body-secondary";
    cell(tr, statusLabel(s, p));
    cell(tr, p.form || "–").className = "d-none d-md-table-cell";
    var onStep = cell(tr, finished ? "finished" : p.responded_step === s.step ? "answered" : "–");
    if (!finished && !gone && p.responded_step !== s.step && since !== null) {
      onStep.dataset.since = since;  // ticks: time on this step so far
      onStep.textContent = elapsed(since);
    }
    var ack = cell(tr, finished || gone ? "–" : p.behind ? "behind (v" + p.acked_version + ")" : "up to date");
    ack.className = "d-none d-md-table-cell " + (p.behind && !finished && !gone ? "text-warning-emphasis" : "text-success");
    var actions = document.createElement("div");
    actions.className = "d-flex flex-wrap gap-1 justify-content-end";
    if (!gone) actions.appendChild(answersButton(p.id));
    if (!gone && !finished && !over) actions.appendChild(kickButton(p.id));
    cell(tr, "").appendChild(actions);
    return tr;
  }

  function kickButton(id) {
    var kick = document.createElement("button");
    kick.className = "btn btn-sm btn-outline-danger";
    kick.textContent = "Kick";
    kick.addEventListener("click", function () {
      if (window.confirm("Remove " + id + " from the group session?")) send(P.msg.kick(id));
    });
    return kick;
  }

  // ---- a participant's answers at the current step, on demand -------------------------
  var openAnswers = {};
  function answersButton(id) {
    var b = document.createElement("button");
    b.className = "btn btn-sm btn-outline-secondary";
    b.textContent = openAnswers[id] ? "Hide answers" : "Answers";
    b.setAttribute("aria-expanded", String(!!openAnswers[id]));
    b.addEventListener("click", function () {
      if (openAnswers[id]) delete openAnswers[id]; else openAnswers[id] = {loading: true};
      render(current);
      if (openAnswers[id]) loadAnswers(id);
    });
    return b;
  }
  function loadAnswers(id) {
    fetch(root.dataset.answersUrl + "?participant=" + encodeURIComponent(id), {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (data) { if (openAnswers[id]) { openAnswers[id] = data; render(current); } })
      .catch(function () { if (openAnswers[id]) { openAnswers[id] = {message: "Could not load (offline?)"}; render(current); } });
  }
  function answersRow(id) {
    var tr = document.createElement("tr");
    tr.dataset.answersFor = id;
    var td = cell(tr, "");
    td.colSpan = 7;
    td.className = "small bg-body-tertiary";
    var data = openAnswers[id];
    if (data.loading) td.textContent = "Loading…";
    else if (!data.ok) td.textContent = data.message || "Not available.";
    else if (!data.answers.length) td.textContent = "No answer at step " + data.step + " yet.";
    else td.textContent = "Step " + data.step + ": " + data.answers.map(function (a) {
      var v = a.value;
      return a.item + " = " + (Array.isArray(v) ? v.join(", ") : typeof v === "object" && v !== null ? JSON.stringify(v) : v);
    }).join(" · ");
    return tr;
  }

  function elapsed(sinceMs) {
    var seconds = Math.max(0, Math.round((socket.serverNow() - sinceMs) / 1000));
    return "for " + Math.floor(seconds / 60) + ":" + two(seconds % 60);
  }
  window.setInterval(function () {
    root.querySelectorAll("[data-since]").forEach(function (c) { c.textContent = elapsed(Number(c.dataset.since)); });
  }, 1000);

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
    onState: function (s) {
      showError("");
      var stepChanged = current && current.step !== s.step;
      render(s);
      Object.keys(openAnswers).forEach(function (id) { if (stepChanged || !openAnswers[id].loading) loadAnswers(id); });
    },
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
  window.EnsembleConsole = {
    send: send, state: function () { return current; }, serverNow: function () { return socket.serverNow(); }
  };

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

  // The experimenter code shows only when asked for (a projected console shows the room).
  var reveal = $("[data-reveal-code]");
  if (reveal) {
    reveal.addEventListener("click", function () {
      var code = $("#experimenter-code");
      var shown = code.classList.toggle("d-none") === false;
      reveal.setAttribute("aria-expanded", String(shown));
      reveal.textContent = shown ? "Hide experimenter code" : "Show experimenter code";
    });
  }

  render(current);
})();
