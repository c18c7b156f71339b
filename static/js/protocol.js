/* Ensemble Live group protocol: the JS mirror of realtime/schemas.py (keep in step).
   Defines window.EnsembleProtocol = {CLOSE, TYPES, msg, wsUrl, GroupSocket, clock, counts}.

   GroupSocket connects, reconnects with back-off (not after a final close code),
   ignores states older than the last one, acknowledges states (participants; a live page
   holds the ack of a step's first state until it reveals the step: acknowledge),
   and pings (presence + clock offset estimate: offsetMs = server clock minus this clock,
   from the pong with the shortest round trip the socket ever had: its error is at most
   half that round trip). The clock rule is `clock` below, mirrored in realtime/clock.py
   for the Python clients (tests/realtime/test_clock.py runs both): on open one ping;
   after each pong the next one PING_GAP_MS (or that round trip) later while the best round trip is above
   GOOD_RTT_MS (at most FAST_PINGS after an open; one ping in flight at a time); a ping
   every PING_MS; and once per step a ping QUIET_PING_MS (+ up to QUIET_SPREAD_MS) after the
   step's starts_at, when the fan-out is over and the answers have not begun (a quiet
   moment: under load most round trips are long). options.onClock(offsetMs, rttMs) is
   called whenever the estimate improves. options.onContent(content) gets each
   group.content frame (the live page's step content, sent once per step).

   now() is this page's clock in epoch ms to a fraction of a millisecond (pings, pongs and
   the live page's frame times use it): Date.now() counts whole milliseconds, so each
   reading is up to 1 ms early, and at a frame's edge that is the difference between two
   frames; performance.now() is fine-grained but counts from the page's load on a clock
   that may stop while the computer sleeps. So now() is performance.now() plus the largest
   recent (Date.now() - performance.now()) (Date.now() truncates: the largest difference is
   the truest), started again when the two jump apart (a sleep, the wall clock set). */
(function (global) {
  "use strict";

  var CLOSE = {
    UNAUTHENTICATED: 4001, FORBIDDEN: 4003, NOT_FOUND: 4004,
    TIMEOUT: 4008, TOO_LARGE: 4009, KICKED: 4010, INTERNAL: 4011
  };
  var FINAL = [4001, 4003, 4004, 4009, 4010];

  var base = {value: null, seen: []};  // recent Date.now() - performance.now(), largest kept
  var BASE_SAMPLES = 64, BASE_JUMP_MS = 2;
  function epochOf(t) {  // epoch ms (this page's clock) of a performance.now() time
    var p = global.performance.now(), d = Date.now() - p;
    if (base.value === null || Math.abs(d - base.value) > BASE_JUMP_MS) base.seen = [];
    base.seen.push(d);
    if (base.seen.length > BASE_SAMPLES) base.seen.shift();
    base.value = Math.max.apply(null, base.seen);
    return (t == null ? p : t) + base.value;
  }
  function now() { return epochOf(null); }
  // The clock-offset rule (realtime/clock.py: the same constants and functions).
  var clock = {
    PING_MS: 3000, PING_GAP_MS: 200, GOOD_RTT_MS: 5, FAST_PINGS: 6, QUIET_PING_MS: 100, QUIET_SPREAD_MS: 400,
    ACK_HOLD_MS: 500,
    sample: function (t, arrival, serverMs) {
      var rtt = arrival - t;
      return {offset: serverMs - (t + rtt / 2), rtt: rtt};
    },
    better: function (bestRtt, rtt) { return bestRtt == null || rtt <= bestRtt; },
    nextPingMs: function (bestRtt, fastSent, rtt) {
      if (fastSent >= clock.FAST_PINGS || (bestRtt != null && bestRtt <= clock.GOOD_RTT_MS)) return null;
      return Math.max(clock.PING_GAP_MS, rtt);
    },
    quietPingMs: function (startsAt, offset, now, draw) {
      var due = startsAt - offset + clock.QUIET_PING_MS + draw * clock.QUIET_SPREAD_MS;
      return due > now ? due - now : null;
    },
    holdsAck: function (phase, step, shown) {
      return phase === "running" && typeof step === "number" && (shown == null || step > shown);
    }
  };

  var TYPES = {
    experimenter: ["start", "advance", "pause", "resume", "exit_loop", "end", "abort", "set_context", "kick", "ping",
                   "extend_timer", "stop_timer", "move_on", "send_back", "resend"],
    participant: ["ready", "ack", "location", "onset", "client_error", "ping"],
    server: ["group.state", "group.content", "error", "pong"]
  };

  var msg = {
    start: function () { return {type: "start"}; },
    advance: function (step) { return {type: "advance", step: step}; },
    pause: function () { return {type: "pause"}; },
    resume: function () { return {type: "resume"}; },
    exitLoop: function () { return {type: "exit_loop"}; },
    end: function () { return {type: "end"}; },
    abort: function () { return {type: "abort"}; },
    setContext: function (patch) { return {type: "set_context", patch: patch}; },
    kick: function (participant) { return {type: "kick", participant: participant}; },
    extendTimer: function (step, seconds) { return {type: "extend_timer", step: step, seconds: seconds}; },
    stopTimer: function (step) { return {type: "stop_timer", step: step}; },
    moveOn: function (participant, step) { return {type: "move_on", participant: participant, step: step}; },
    sendBack: function (participant, step) { return {type: "send_back", participant: participant, step: step}; },
    resend: function (participant) { return {type: "resend", participant: participant}; },
    ready: function (step) { return {type: "ready", step: step}; },
    ack: function (version) { return {type: "ack", version: version}; },
    location: function (form, step) { return {type: "location", form: form, step: step}; },
    onset: function (step, at, lateMs, readyAt, rttMs, frame) {
      return {type: "onset", step: step, at: at, late_ms: lateMs, ready_at: readyAt,
              rtt_ms: rttMs == null ? null : rttMs, frame: !!frame};
    },
    clientError: function (step, message) {
      return {type: "client_error", step: step, message: String(message).slice(0, 500)};
    },
    ping: function () { return {type: "ping", t: now()}; }
  };

  function wsUrl(path) {
    return (global.location.protocol === "https:" ? "wss://" : "ws://") + global.location.host + path;
  }

  function GroupSocket(path, options) {
    this.path = path;
    this.opts = options || {};
    this.version = 0;
    this.state = null;
    this.offsetMs = null;   // server clock minus this clock, best (lowest round trip) estimate
    this.bestRtt = null;
    this.delay = 500;
    this.closedFor = null;
    this.ws = null;
    this.pinger = null;
    this.fastSent = 0;      // quick pings since the last open (clock.nextPingMs)
    this.quietStep = null;  // the step whose quiet ping is scheduled (clock.quietPingMs)
    this.heldAck = null;    // the version whose ack waits for its step's reveal (acknowledge)
    this.ackTimer = null;
    this.connect();
  }

  GroupSocket.prototype.connect = function () {
    var self = this;
    var ws = new WebSocket(wsUrl(this.path));
    this.ws = ws;
    this.status("connecting");
    ws.onopen = function () {
      self.delay = 500;
      self.status("online");
      self.fastSent = 0;
      self.send(msg.ping());
      self.pinger = global.setInterval(function () { self.send(msg.ping()); }, self.opts.pingMs || clock.PING_MS);
    };
    ws.onmessage = function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (data.type === "group.state") {
        if (self.opts.ack) self.acknowledge(data);
        if (data.version < self.version) return;          // older: ignore
        var fresh = data.version > self.version;
        self.version = data.version;
        self.state = data;
        self.quietPing(data);
        if (fresh && self.opts.onState) self.opts.onState(data, self);
      } else if (data.type === "group.content") {
        if (self.opts.onContent) self.opts.onContent(data, self);
      } else if (data.type === "pong") {
        var got = clock.sample(data.t, now(), data.server_ms);
        if (clock.better(self.bestRtt, got.rtt)) {
          self.bestRtt = got.rtt;
          self.offsetMs = got.offset;
          if (self.opts.onClock) self.opts.onClock(self.offsetMs, got.rtt, self);
        }
        var next = clock.nextPingMs(self.bestRtt, self.fastSent, got.rtt);
        if (next != null) {
          self.fastSent += 1;
          global.setTimeout(function () { self.send(msg.ping()); }, next);
        }
      } else if (data.type === "error" && self.opts.onError) {
        self.opts.onError(data, self);
      }
    };
    ws.onclose = function (event) {
      global.clearInterval(self.pinger);
      if (FINAL.indexOf(event.code) >= 0 || self.closedFor === "client") {
        self.closedFor = self.closedFor || event.code;
        self.status("closed");
        if (self.opts.onClose) self.opts.onClose(event.code, self);
        return;
      }
      self.status("reconnecting");
      global.setTimeout(function () { self.connect(); }, self.delay);
      self.delay = Math.min(self.delay * 2, 5000);
    };
  };

  /* Acknowledge a state at once, or (options.shownStep given: the step on the page's screen)
     hold the ack of a state that starts a new step until releaseAck (the page revealed it),
     at most clock.ACK_HOLD_MS (clock.holdsAck; realtime/clock.py says why). */
  GroupSocket.prototype.acknowledge = function (data) {
    var self = this;
    if (this.opts.shownStep && clock.holdsAck(data.phase, data.step, this.opts.shownStep())) {
      if (this.heldAck == null || data.version > this.heldAck) this.heldAck = data.version;
      if (this.ackTimer == null) this.ackTimer = global.setTimeout(function () { self.releaseAck(); }, clock.ACK_HOLD_MS);
      return;
    }
    var version = Math.max(data.version, this.heldAck == null ? 0 : this.heldAck);
    this.dropHeldAck();
    this.send(msg.ack(version));
  };

  GroupSocket.prototype.releaseAck = function () {
    var version = this.heldAck;
    this.dropHeldAck();
    if (version != null) this.send(msg.ack(version));
  };

  GroupSocket.prototype.dropHeldAck = function () {
    global.clearTimeout(this.ackTimer);
    this.ackTimer = null;
    this.heldAck = null;
  };

  // One ping a little after a step's starts_at (its first state): a quiet moment for the clock.
  GroupSocket.prototype.quietPing = function (state) {
    if (state.starts_at == null || state.step === this.quietStep) return;
    this.quietStep = state.step;
    var self = this, wait = clock.quietPingMs(state.starts_at, this.offsetMs || 0, now(), Math.random());
    if (wait != null) global.setTimeout(function () { self.send(msg.ping()); }, wait);
  };

  GroupSocket.prototype.send = function (message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  };

  GroupSocket.prototype.close = function () {
    this.closedFor = "client";
    if (this.ws) this.ws.close();
  };

  GroupSocket.prototype.serverNow = function () {
    return now() + (this.offsetMs || 0);
  };

  GroupSocket.prototype.status = function (text) {
    if (this.opts.onStatus) this.opts.onStatus(text, this);
  };

  /* The count a participant's page shows of a group.state: "n of m ready" while the group
     gathers, "n of m answered" on a step (both pages: group_live.js, group_participant.js). */
  function counts(state) {
    return state.ready + " of " + state.active + (state.phase === "waiting" ? " ready" : " answered");
  }

  global.EnsembleProtocol = {CLOSE: CLOSE, FINAL: FINAL, TYPES: TYPES, msg: msg, wsUrl: wsUrl, GroupSocket: GroupSocket,
                             clock: clock, now: now, epochOf: epochOf, counts: counts};
})(window);
