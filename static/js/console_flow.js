/* Flow control on the experimenter console (issue 20): the step's countdown, Extend and
   Stop for the session's timer, and per participant Move on (their step closes as
   skipped), Send back (to the current step) and Resend (the state again). Builds on
   group_console.js, which hands each rendered state over as the "ensemble:state" event
   of #console and exposes EnsembleConsole.send and EnsembleConsole.serverNow. */
(function () {
  "use strict";
  var root = document.getElementById("console");
  var panel = document.querySelector("[data-flow-timer]");
  if (!root || !panel || !window.EnsembleProtocol || !window.EnsembleCountdown) return;
  var P = window.EnsembleProtocol;
  var state = null;
  var countdown = EnsembleCountdown.create(panel.querySelector("[data-countdown]"), {
    serverNow: function () { return window.EnsembleConsole.serverNow(); }
  });

  function send(message) { window.EnsembleConsole.send(message); }

  function button(label, title, onClick, style) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "btn btn-sm " + (style || "btn-outline-secondary");
    b.textContent = label;
    b.title = title;
    b.dataset.flow = label.toLowerCase().replace(/ /g, "-");
    b.addEventListener("click", onClick);
    return b;
  }

  function participantControls(s) {
    var live = s.phase === "running" || s.phase === "paused";
    s.participants.forEach(function (p) {
      var row = root.querySelector('tr[data-participant="' + p.id + '"]');
      var actions = row && row.querySelector(".d-flex");
      if (!actions || !live || p.status === "kicked" || p.status === "finished") return;
      if (p.flag) row.querySelector("td:nth-child(5)").textContent = p.flag.replace(/_/g, " ");
      if (p.dropped_at_ms) row.querySelector("td:nth-child(2)").textContent = p.bot ? "○ dropped (bot plays)" : "○ dropped";
      if (p.responded_step !== s.step) {
        actions.prepend(button("Move on", "Close this participant's step as skipped", function () {
          if (window.confirm("Move " + p.id + " on? Their step is closed as skipped.")) send(P.msg.moveOn(p.id, s.step));
        }));
      } else {
        actions.prepend(button("Send back", "Let this participant answer the current step again", function () {
          send(P.msg.sendBack(p.id, s.step));
        }));
      }
      actions.prepend(button("Resend", "Send the current state to the participant again", function () {
        send(P.msg.resend(p.id));
      }));
    });
  }

  // A lobby at min_size with this console open waits for the experimenter: Start now.
  function lobbyPrompt(s) {
    var prompt = document.querySelector("[data-lobby-prompt]");
    if (!prompt) return;
    var full = s.phase === "waiting" && !!s.lobby && s.lobby.waiting_for === 0 && s.lobby.placed > 0;
    prompt.classList.toggle("d-none", !full);
    if (full) prompt.querySelector("[data-lobby-waiting]").textContent = s.lobby.placed;
  }

  function render(s) {
    state = s;
    var timer = s.timer || {};
    var has = timer.deadline_ms != null || timer.timer_remaining_ms != null;
    // d-none, not the hidden attribute: the row's d-flex (display: flex !important) overrides [hidden]
    panel.classList.toggle("d-none", !(has || timer.timed_out));
    panel.querySelectorAll("[data-timer-cmd], [data-extend-seconds]").forEach(function (b) { b.disabled = !has; });
    countdown.update(s);
    participantControls(s);
    lobbyPrompt(s);
  }

  var startNow = document.querySelector("[data-lobby-start]");
  if (startNow) startNow.addEventListener("click", function () { send(P.msg.start()); });

  panel.querySelector('[data-timer-cmd="extend"]').addEventListener("click", function () {
    var seconds = parseInt(panel.querySelector("[data-extend-seconds]").value || "30", 10);
    send(P.msg.extendTimer(state.step, seconds));
  });
  panel.querySelector('[data-timer-cmd="stop"]').addEventListener("click", function () {
    if (window.confirm("Stop the timer? This step will not time out.")) send(P.msg.stopTimer(state.step));
  });

  root.addEventListener("ensemble:state", function (event) { render(event.detail); });
  if (window.EnsembleConsole && window.EnsembleConsole.state) render(window.EnsembleConsole.state());
})();
