/* A participant in a live group session. On the waiting screen and on a group_trial
   form page, element [data-lockstep] carries:
     data-ws-path   /ws/group/<id>/participant/
     data-run-url   /run/<experiment_id>/ (the runner serves the right page)
     data-step      the step this page was rendered for
     data-phase     the phase it was rendered in
     data-mode      "waiting" (waiting screen) or "form" (answering)
     data-exit-loop "1" if rendered after the experimenter ended the loop
   It acknowledges every state, shows "n of m ready" (answered, on a step), puts the socket's clock offset
   estimate into the trial form (_clock_offset_ms, _clock_rtt_ms), and goes to the run URL when
   the page no longer matches the group's position (a new step, the start, the end,
   a loop exit, resuming from a pause, or removal). */
(function () {
  "use strict";
  var el = document.querySelector("[data-lockstep]");
  if (!el || !window.EnsembleProtocol) return;
  var P = window.EnsembleProtocol;
  var page = {
    step: parseInt(el.dataset.step || "0", 10),
    phase: el.dataset.phase || "waiting",
    mode: el.dataset.mode || "waiting",
    exitLoop: el.dataset.exitLoop === "1"
  };
  var runUrl = el.dataset.runUrl;
  var leaving = false;
  var readySent = -1;

  function go() {
    if (leaving) return;
    leaving = true;
    window.location.replace(runUrl);
  }

  function set(selector, value) {
    var node = el.querySelector(selector);
    if (node) node.textContent = value;
  }

  function shouldLeave(s) {
    if (s.me.status === "kicked") return true;
    var over = function (phase) { return phase === "ended" || phase === "aborted"; };
    if (over(page.phase)) return false;   // rendered after the end: nothing more will happen
    if (over(s.phase)) return true;
    if (s.step !== page.step) return true;
    if (s.exit_loop && !page.exitLoop) return true;
    if (page.mode === "waiting") {
      if (page.phase === "waiting" && s.phase !== "waiting") return true;   // started
      if (page.phase === "paused" && s.phase === "running" && s.me.responded_step !== s.step) return true;
    }
    return false;
  }

  function render(s, socket) {
    if (shouldLeave(s)) return go();
    var paused = s.phase === "paused";
    var overlay = el.querySelector("[data-paused]");
    if (overlay) overlay.hidden = !paused;
    if (page.mode === "waiting") {
      set("[data-ready]", P.counts(s));
      set("[data-message]", s.phase === "waiting" ? "Waiting for the experimenter to start…" :
        paused ? "The session is paused." : (s.phase === "ended" || s.phase === "aborted") ?
        "The group session is over. Thank you for taking part." : "Waiting for the others…");
      if (s.phase === "waiting" && readySent !== s.step) {
        readySent = s.step;
        socket.send(P.msg.ready(s.step));
      }
    }
  }

  // The clock offset estimated over the socket goes with the answer (stored with the
  // session): _clock_offset_ms = this clock minus the server's, _clock_rtt_ms its round trip.
  function clock(offsetMs, rttMs) {
    var offset = document.querySelector("input[name=_clock_offset_ms]");
    var rtt = document.querySelector("input[name=_clock_rtt_ms]");
    if (offset && rtt) { offset.value = String(-offsetMs); rtt.value = String(rttMs); }
  }

  new P.GroupSocket(el.dataset.wsPath, {
    ack: true,
    onClock: clock,
    onState: render,
    onStatus: function (status) { set("[data-link]", status === "online" ? "" : status + "…"); },
    onClose: function (code) {
      if (code === P.CLOSE.KICKED) return go();
      set("[data-link]", "The connection was refused (" + code + "). Reload the page.");
    }
  });
})();
