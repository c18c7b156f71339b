/* The step's countdown (issue 20), for the console and the participant page alike.
   A state frame carries timer = {deadline_ms, timer_remaining_ms, timed_out}; the
   countdown runs to deadline_ms on this page's corrected clock (serverNow(), e.g.
   GroupSocket.prototype.serverNow: Date.now() plus the socket's offset estimate), so
   every page shows the same seconds whatever its own clock says.

     var countdown = EnsembleCountdown.create(node, {serverNow: fn, onExpire: fn});
     countdown.update(state);   // on every group.state
   The node gets its text ("0:27", "paused 0:12", "Time is up") and data-countdown-ms
   (ms left, for tests); it is hidden while the step has no timer. onExpire(state) is
   called once per step when the deadline passes on this clock (the participant page can
   submit what is filled there: on_timeout submit). */
(function (global) {
  "use strict";

  function format(ms) {
    var total = Math.max(0, Math.ceil(ms / 1000));
    var s = total % 60;
    return Math.floor(total / 60) + ":" + (s < 10 ? "0" : "") + s;
  }

  function create(node, options) {
    var opts = options || {};
    var serverNow = opts.serverNow || function () { return Date.now(); };
    var state = null, expiredStep = null, ticker = null;

    function paint() {
      var timer = state && state.timer;
      if (!timer || (timer.deadline_ms == null && timer.timer_remaining_ms == null && !timer.timed_out)) {
        node.hidden = true;
        node.removeAttribute("data-countdown-ms");
        return;
      }
      node.hidden = false;
      if (timer.timed_out) {
        node.textContent = opts.timeUpText || "Time is up";
        node.dataset.countdownMs = "0";
        return;
      }
      if (timer.deadline_ms == null) {
        node.textContent = "paused " + format(timer.timer_remaining_ms);
        node.dataset.countdownMs = String(timer.timer_remaining_ms);
        return;
      }
      var left = timer.deadline_ms - serverNow();
      node.textContent = format(left);
      node.dataset.countdownMs = String(Math.max(0, Math.round(left)));
      node.classList.toggle("text-danger", left <= 5000);
      if (left <= 0 && expiredStep !== state.step) {
        expiredStep = state.step;
        if (opts.onExpire) opts.onExpire(state);
      }
    }

    return {
      update: function (s) {
        state = s;
        paint();
        if (!ticker) ticker = global.setInterval(paint, 100);
      },
      stop: function () { global.clearInterval(ticker); ticker = null; }
    };
  }

  global.EnsembleCountdown = {create: create, format: format};
})(window);
