/* The live page (docs/groups.md, "The live page"; wire contract: live-protocol).

   One document for the group part of a run. Over the participant socket it gets each
   state (with starts_at) and each step's content (group.content, or GET data-content-url),
   builds the step hidden, reveals it on an animation frame at starts_at on the server
   clock (corrected by the socket's offset estimate), reports the onset, and posts the
   answer with fetch (no navigation). It navigates once, to data-run-url, when the run
   leaves the group part.

   The step's countdown (issue 20, group_countdown.js) counts to state.timer.deadline_ms
   (the step's starts_at + timeout) on the same corrected clock; when it runs out (or the
   server's timer closed the step: timer.timed_out) and the step's on_timeout is "submit",
   the page sends what is filled, flagged _timed_out (the server relaxes required fields). While a
   lobby waits, the waiting screen says how many more are needed and the estimated wait.

   window.ensembleLive.log: one entry per step, {step, state_at, content_at, ready_at,
   reveal_at (performance.now() when the reveal frame's callback showed the step), frame_at
   (that frame's time), next_frame_at (the next frame's time: the revealed frame is out by
   then), starts_at, onset_ms (the reveal frame's time on the server clock), offset_ms
   (server minus browser), late_ms}; window.ensembleLive.submitAt: performance.now() of the
   last answer's click. */
(function () {
  "use strict";
  var el = document.querySelector("[data-lockstep]");
  if (!el || !window.EnsembleProtocol) return;
  var P = window.EnsembleProtocol;
  var initial = JSON.parse(document.getElementById("live-initial").textContent || "{}");
  var form = el.querySelector("form[data-live-form]");
  var questions = el.querySelector("[data-questions]");
  var stage = el.querySelector("[data-stage]");
  var waiting = el.querySelector("[data-waiting]");
  var host = document.getElementById("jspsych-host");
  var errorPanel = el.querySelector("[data-timeline-error]");
  var live = window.ensembleLive = {log: [], submitAt: null, errors: []};
  var page = {
    visit: initial.visit || null, contents: {}, state: null, shown: null, revealed: null,
    answered: {}, leaving: false, sending: false, pending: null, fetching: false, readySent: -1,
    task: null, waitTimer: null, frameMs: null
  };
  var logs = {};
  var socket;
  var countdownNode = el.querySelector("[data-countdown]");
  var countdown = countdownNode && window.EnsembleCountdown ? window.EnsembleCountdown.create(countdownNode, {
    serverNow: function () { return serverNow(); },
    onExpire: function (s) { live.expiredAt = serverNow(); timedOut(s, true); }
  }) : null;

  function now() { return P.now(); }  // (sub-millisecond: protocol.js)
  function serverNow() { return now() + (socket && socket.offsetMs || 0); }
  function entry(step) {
    if (!logs[step]) {
      logs[step] = {step: step, state_at: null, content_at: null, ready_at: null, reveal_at: null, frame_at: null,
                    next_frame_at: null, starts_at: null, onset_ms: null, offset_ms: null, late_ms: null};
      live.log.push(logs[step]);
    }
    return logs[step];
  }
  function text(selector, value) {
    var node = el.querySelector(selector);
    if (node) node.textContent = value;
  }
  function hidden(name, value) {
    var input = form.querySelector('input[name="' + name + '"]');
    if (input) input.value = value == null ? "" : String(value);
  }

  function go(url) {
    if (page.leaving) return;
    page.leaving = true;
    cancelPending();
    window.location.replace(url || el.dataset.runUrl);
  }

  /* ---- what the group state asks for ---------------------------------------- */
  function shouldLeave(s) {
    if (s.me.status === "kicked" || s.me.status === "finished" || s.me.status === "released") return true;
    if (s.phase === "ended" || s.phase === "aborted") return true;
    return !!(s.exit_loop && s.me.responded_step === s.step);
  }

  function onState(s) {
    page.state = s;
    if (s.phase === "running" || s.phase === "paused") {
      var e = entry(s.step);
      if (e.state_at === null) { e.state_at = performance.now(); }
      e.starts_at = s.starts_at;
    }
    if (shouldLeave(s)) return go();
    if (countdown) countdown.update(s);
    if (s.timer && s.timer.timed_out) timedOut(s);
    showLobby(s.lobby);
    var overlay = el.querySelector("[data-paused]");
    if (overlay) overlay.hidden = s.phase !== "paused";
    text("[data-ready]", P.counts(s));
    text("[data-message]", s.phase === "waiting" ? (s.lobby && s.lobby.waiting_for ? "Waiting for more participants…" :
      "Waiting for the experimenter to start…") :
      s.phase === "paused" ? "The session is paused." : "Waiting for the others…");
    if (s.phase === "waiting" && page.readySent !== s.step) {
      page.readySent = s.step;
      socket.send(P.msg.ready(s.step));
    }
    consider();
  }

  /* The step ran out of time (at the deadline on this page's corrected clock, or when the
     server's timer closed it: timer.timed_out): a step with on_timeout "submit" sends what
     is filled, once (flagged; the server relaxes required fields past the deadline). */
  function timedOut(s, atDeadline) {
    var c = page.contents[s.step];
    if (!s.timer || !(s.timer.timed_out || atDeadline) || page.revealed !== s.step || page.shown !== s.step) return;
    var sent = atDeadline ? "expirySent" : "timedOutSent";  // each once (the nonce stores one answer)
    if (page.answered[s.step] || page[sent] === s.step || !c || c.on_timeout !== "submit") return;
    page[sent] = s.step;
    submit(null, true);
  }

  function showLobby(lobby) {
    var node = el.querySelector("[data-lobby]");
    if (!node) return;
    node.hidden = !lobby || !lobby.waiting_for;
    if (node.hidden) return;
    var eta = lobby.eta_seconds == null ? "" : " (about " + (lobby.eta_seconds < 60 ? lobby.eta_seconds + " s" :
      Math.round(lobby.eta_seconds / 60) + " min") + ")";
    node.textContent = "Waiting for " + lobby.waiting_for + " more participant" +
      (lobby.waiting_for === 1 ? "" : "s") + eta + " · " + lobby.placed + " of " + lobby.min_size + " here";
  }

  function onContent(c) {
    var e = entry(c.step);
    if (e.content_at === null) e.content_at = performance.now();
    page.contents[c.step] = c;
    consider();
  }

  function mustWait(s) {
    if (s.phase === "waiting" || s.me.responded_step === s.step || page.answered[s.step]) return true;
    return s.phase === "paused" && page.shown !== s.step;
  }

  function consider() {
    var s = page.state;
    if (!s || page.leaving) return;
    if (page.shown !== null && page.shown !== s.step && !page.answered[page.shown] && page.revealed === page.shown) {
      return go();  // the group moved on without this answer: the run page says where to rejoin
    }
    // Answered for this page (a stand-in bot while it was away; a timed-out step too): its
    // visit may have moved on without it, and a pushed content names no visit: fetch the next one's.
    if (s.phase === "running" && s.me.responded_step === s.step && !page.answered[s.step]) page.visitStale = true;
    if (mustWait(s)) { if (page.shown !== null || el.dataset.mode !== "waiting") showWaiting(); return; }
    if (page.shown === s.step) return;
    var c = page.contents[s.step];
    if (c && page.visit && !page.visitStale && c.order === page.visit.order) return prepare(c, s);
    if (c || el.dataset.push === "0") return fetchContent();
    clearTimeout(page.waitTimer);  // pushed content follows the state; fetch if it does not come
    page.waitTimer = setTimeout(function () { if (stillMissing(s.step)) fetchContent(); }, 1500);
  }

  /* The content of step is still what the page lacks: the group is on that step and the page
     neither shows it nor waits (a timer set for one state must not fetch after the answer,
     when its reply would say "waiting" for the step after). */
  function stillMissing(step) {
    var s = page.state;
    return !!s && !page.leaving && s.step === step && page.shown !== step && !mustWait(s);
  }

  function fetchContent() {
    if (page.fetching) return;
    page.fetching = true;
    var asked = page.state;  // the reply says where the run was when asked
    fetch(el.dataset.contentUrl, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (reply) {
        page.fetching = false;
        if (reply.mode === "leave") return go();
        if (reply.visit) { page.visit = reply.visit; page.visitStale = false; }
        if (reply.content) { reply.content.starts_at = reply.starts_at; onContent(reply.content); }
        else if (page.state !== asked) consider();  // a state came meanwhile (a new step): it decides, not this older reply
        else if (reply.mode === "waiting") showWaiting();
      })
      .catch(function () { page.fetching = false; setTimeout(consider, 1000); });
  }

  /* ---- showing a step -------------------------------------------------------- */
  function showWaiting() {
    clearTimeout(page.waitTimer);
    cancelPending();
    stopTask();
    page.shown = null;
    stage.hidden = true;
    stage.classList.add("live-veiled");
    waiting.classList.remove("live-veiled");
    waiting.hidden = false;
    el.dataset.mode = "waiting";
  }

  function cancelPending() {
    if (!page.pending) return;
    clearTimeout(page.pending.timer);
    clearTimeout(page.pending.backup);
    if (page.pending.raf) cancelAnimationFrame(page.pending.raf);
    page.pending = null;
  }

  function prepare(c, s) {
    clearTimeout(page.waitTimer);
    cancelPending();
    stopTask();
    page.shown = s.step;
    var e = entry(s.step);
    if (e.content_at === null) e.content_at = performance.now();
    text("[data-title]", c.title || "");
    text("[data-round]", c.loop_rounds && page.visit ? "Round " + page.visit.visit + " of " + c.loop_rounds : "");
    var problem = el.querySelector("[data-problem]");
    problem.hidden = !c.problem;
    problem.textContent = c.problem || "";
    if (c.html != null) questions.innerHTML = c.html;  // (null: the page came with them)
    c.html = null;
    bindQuestions();
    hidden("_order", page.visit.order); hidden("_visit", page.visit.visit); hidden("_nonce", page.visit.nonce);
    var stepField = questions.querySelector('input[name$="_group_step"]');  // the form's own (prefixed)
    if (stepField) stepField.value = String(s.step);
    errorPanel.classList.add("d-none");
    var ready = c.timeline ? window.EnsembleLiveTask.prepare(c, host, taskHooks(c, s.step)) : Promise.resolve(null);
    ready.then(function (task) {
      if (page.shown !== s.step || page.leaving) return;
      page.task = task;
      lay(task);
      e.ready_at = performance.now();
      e.ready_server = serverNow();
      schedule(s.step, s.starts_at != null ? s.starts_at : c.starts_at);
    }, function (err) { if (page.shown === s.step) { lay(null); reveal(s.step, null); fail(s.step, err); } });
  }

  /* The step in the page, veiled: displayed (so styled and laid out now, not in the reveal
     frame) under the waiting screen, which stays on top until the reveal. */
  function lay(task) {
    questions.hidden = !!task;
    host.hidden = !task;
    stage.classList.add("live-veiled");
    stage.hidden = false;
    void stage.offsetHeight;  // style and layout now
  }

  // Epoch ms (browser clock) of a performance.now() time, e.g. an animation frame's.
  function epochOf(t) { return P.epochOf(t); }

  /* Reveal at startsAt (server clock) in the animation frame whose frame time is nearest
     to it (at most half a frame early), judged by the frame's time, which every page of
     one display shares, not by when this page's callback happens to run. A timer wakes
     the frame loop WAKE_MS early (a frame loop costs a callback per frame); a backup
     timer reveals if frames do not come (a hidden or throttled page: no frames, shown on
     the timer and reported late); content ready after startsAt is shown in the next frame
     and reported late. The target follows the clock estimate, which may improve while the
     step waits. The frame's length is the display's: the shortest gap between frames seen
     (60 Hz until a shorter one is seen), never the last gap, which after missed frames is
     several frames long and would make a frame up to that much early look nearest. */
  var WAKE_MS = 50, FRAME_MS = 1000 / 60, SHORTEST_FRAME_MS = 6;
  function schedule(step, startsAt) {
    var target = function () { return startsAt == null ? now() : startsAt - (socket.offsetMs || 0); };
    var pending = page.pending = {timer: null, raf: null, backup: null};
    var last = null, interval = page.frameMs || FRAME_MS;
    var show = function (frameEpoch, frameAt, onFrame) {
      if (page.pending !== pending) return;
      cancelPending();
      page.frameMs = interval;
      reveal(step, startsAt, frameEpoch, frameAt, onFrame);
    };
    var frame = function (ts) {
      if (last !== null && ts - last >= SHORTEST_FRAME_MS) interval = Math.min(interval, ts - last);
      last = ts;
      // A callback that runs more than a frame after its frame's time (a stalled main
      // thread) shows the step in a later frame: its own time is the honest onset.
      var t = performance.now() - ts > interval ? performance.now() : ts;
      var at = epochOf(t);
      if (at + interval / 2 >= target()) return show(at, t, t === ts);
      pending.raf = requestAnimationFrame(frame);
    };
    var wake = function () {
      pending.raf = requestAnimationFrame(frame);
      clearTimeout(pending.backup);  // no frame within two frames of the target: show now
      pending.backup = setTimeout(function () { show(now(), performance.now()); },
                                  Math.max(0, target() - now()) + 2 * FRAME_MS + 5);
    };
    if (document.hidden) {
      pending.timer = setTimeout(function () { show(now(), performance.now()); }, Math.max(0, target() - now()));
    } else if (target() - now() > WAKE_MS) {
      pending.timer = setTimeout(wake, target() - now() - WAKE_MS);
    } else wake();
  }

  /* The reveal frame does a class toggle and nothing that lays out new DOM (the step was
     laid out veiled); the reports and the focus follow in a task after it. The onset is
     the frame's time on the server clock; a page that showed the step later than the
     frame nearest to startsAt (content late, no frames) reports how late. */
  function reveal(step, startsAt, frameEpoch, frameAt, onFrame) {
    var e = entry(step);
    e.on_frame = !!onFrame;  // the onset is the time of the frame that showed it (groups.live_frames)
    e.reveal_at = performance.now();
    e.frame_at = frameAt != null ? frameAt : e.reveal_at;
    e.offset_ms = socket.offsetMs || 0;
    e.onset_ms = (frameEpoch != null ? frameEpoch : now()) + e.offset_ms;
    var behind = startsAt == null ? 0 : e.onset_ms - startsAt;
    var wasLate = e.ready_server != null && startsAt != null && e.ready_server > startsAt;
    e.late_ms = wasLate || behind > FRAME_MS / 2 + 1 ? Math.max(1, Math.round(behind)) : 0;
    page.revealed = step;
    stage.hidden = false;
    stage.classList.remove("live-veiled");
    waiting.classList.add("live-veiled");
    if (page.task) page.task.run();
    el.dataset.step = String(step);
    el.dataset.mode = "form";
    hidden("_onset_ms", Math.round(e.onset_ms)); hidden("_onset_late_ms", e.late_ms);
    setTimeout(function () { revealed(step, e); }, 0);
  }

  function revealed(step, e) {
    requestAnimationFrame(function (ts) { e.next_frame_at = ts; });
    if (page.revealed === step && page.shown === step) waiting.hidden = true;  // (veiled, it kept its height)
    socket.send(P.msg.onset(step, Math.round(e.onset_ms), e.late_ms, Math.round(e.ready_server || e.onset_ms),
                            socket.bestRtt, e.on_frame));
    socket.releaseAck();
    var c = page.contents[step];
    if (c) socket.send(P.msg.location(c.form, step));
    if (page.task || page.revealed !== step) return;
    var first = questions.querySelector("input, select, textarea");
    if (first) first.focus();
  }

  /* ---- jsPsych ------------------------------------------------------------- */
  function taskHooks(c, step) {
    return {
      done: function (json) {
        var input = questions.querySelector("input[data-jspsych-data]");
        if (input) input.value = json;
        host.hidden = true;
        if (questions.querySelector("[data-question]")) { questions.hidden = false; return; }
        var next = questions.querySelector("button[name=_action][value=next]");
        submit(next);
      },
      fail: function (err) { fail(step, err); }
    };
  }

  function stopTask() {
    if (page.task) { page.task.stop(); page.task = null; }
    host.hidden = true;
  }

  /* A jsPsych error on one step: reported (socket -> console and server log; the runner's
     failure report), the step offers "Try again"; the page lives on. */
  function fail(step, err) {
    var message = String(err && err.message || err).slice(0, 500);
    live.errors.push({step: step, message: message});
    socket.send(P.msg.clientError(step, message));
    if (page.visit && el.dataset.failureUrl) {
      fetch(el.dataset.failureUrl, {method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrf()},
        body: JSON.stringify({order: page.visit.order, visit: page.visit.visit, nonce: page.visit.nonce,
                              kind: err && err.kind || "exception", message: message})}).catch(function () {});
    }
    stopTask();
    errorPanel.querySelector("[data-timeline-error-message]").textContent = message;
    errorPanel.classList.remove("d-none");
  }

  /* "Try again" asks the server where the run is now (the content GET), as a reload did
     with one page per step: the experimenter may have skipped the form for this
     participant (the reply says "leave": the run page shows what comes next), or the
     step is shown again from fresh content. */
  errorPanel.querySelector("[data-timeline-retry]").addEventListener("click", function () {
    var s = page.state;
    if (!s) return;
    page.shown = null;
    delete page.contents[s.step];
    fetchContent();
  });

  /* ---- answering ----------------------------------------------------------- */
  function csrf() {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function bindQuestions() {
    questions.querySelectorAll("input[type=range]").forEach(function (slider) {
      var out = questions.querySelector('output[for="' + slider.id + '"]');
      var marker = questions.querySelector('input[data-untouched-for="' + slider.id + '"]');
      if (marker) slider.classList.add("slider-untouched");
      var touch = function () {
        if (out) out.textContent = slider.value;
        slider.classList.remove("slider-untouched");
        if (marker) { marker.remove(); marker = null; }
      };
      slider.addEventListener("input", touch);
      slider.addEventListener("change", touch);
    });
  }

  function message(textValue) {
    var box = form.querySelector("[data-answer-message]");
    box.hidden = !textValue;
    box.textContent = textValue || "";
  }

  function submit(button, outOfTime) {
    if ((page.sending && !outOfTime) || page.shown === null) return;
    page.sending = true;
    live.submitAt = performance.now();
    hidden("_client_ms", Math.round(now()));
    try { hidden("_tz", Intl.DateTimeFormat().resolvedOptions().timeZone || ""); } catch (e) { /* old browser */ }
    var data = new FormData(form);
    if (button && button.name) data.append(button.name, button.value);
    if (outOfTime) { data.append("_timed_out", "1"); data.append("_action", "next"); }
    var step = page.shown;
    fetch(el.dataset.answerUrl, {method: "POST", body: data, credentials: "same-origin",
                                 headers: {"X-CSRFToken": csrf(), Accept: "application/json"}})
      .then(function (r) { return r.json().then(function (body) { return {status: r.status, body: body}; }); })
      .then(function (reply) { page.sending = false; answered(step, reply); })
      .catch(function () { page.sending = false; message("The answer could not be sent. Check the connection and try again."); });
  }

  function answered(step, reply) {
    var body = reply.body || {};
    if (reply.status === 200 && body.ok) {
      message("");
      page.answered[step] = true;
      if (body.next === "leave") return go(body.url);
      if (body.visit) { page.visit = body.visit; page.visitStale = false; }
      showWaiting();
      return consider();
    }
    if (body.code === "invalid") {
      questions.innerHTML = body.html;
      bindQuestions();
      questions.hidden = false;
      return message("");
    }
    message(body.message || "The answer was not stored.");
    if (body.code === "already_answered") {  // another tab or an earlier send stored it: wait like an answer
      message("");
      page.answered[step] = true;
      showWaiting();
      return consider();
    }
    if (body.code === "stale_visit") { page.shown = null; return fetchContent(); }
    if (body.code === "stale_step" || body.code === "ended" || body.code === "kicked") return go();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submit(event.submitter);
  });

  socket = new P.GroupSocket(el.dataset.wsPath, {
    ack: true,
    shownStep: function () { return page.revealed; },  // a new step's ack follows its reveal
    onState: onState,
    onContent: onContent,
    onClock: function (offsetMs, rttMs) { hidden("_clock_offset_ms", -offsetMs); hidden("_clock_rtt_ms", rttMs); },
    onStatus: function (status) { text("[data-link]", status === "online" ? "" : status + "…"); },
    onClose: function (code) {
      if (code === P.CLOSE.KICKED) return go();
      text("[data-link]", "The connection was refused (" + code + "). Reload the page.");
    }
  });
  live.socket = socket;
  live.page = page;  // (what the page holds: for tests and debugging)
  if (initial.content && initial.step != null) {
    initial.content.starts_at = initial.starts_at;
    page.contents[initial.step] = initial.content;
    entry(initial.step).content_at = performance.now();
  }
})();
