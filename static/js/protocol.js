/* Ensemble Live group protocol: the JS mirror of realtime/schemas.py (keep in step).
   Defines window.EnsembleProtocol = {CLOSE, TYPES, msg, wsUrl, GroupSocket}.

   GroupSocket connects, reconnects with back-off (not after a final close code),
   ignores states older than the last one, acknowledges states (participants),
   and pings (presence + clock offset estimate: offsetMs = server clock minus this clock,
   from the pong with the shortest round trip): on open one ping, then each pong of the
   opening burst sends the next PING_GAP_MS later (PING_BURST in all, one at a time, so
   that the later ones do not queue behind the connect's work on the server as the first
   does), then one every few seconds; options.onClock
   (offsetMs, rttMs) is called whenever that estimate improves). options.onContent(content)
   gets each group.content frame (the live page's step content, sent once per step). */
(function (global) {
  "use strict";

  var CLOSE = {
    UNAUTHENTICATED: 4001, FORBIDDEN: 4003, NOT_FOUND: 4004,
    TIMEOUT: 4008, TOO_LARGE: 4009, KICKED: 4010, INTERNAL: 4011
  };
  var FINAL = [4001, 4003, 4004, 4009, 4010];
  var PING_BURST = 6;  // pings right after open, each sent PING_GAP_MS after the previous pong
  var PING_GAP_MS = 200;

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
    onset: function (step, at, lateMs, readyAt) {
      return {type: "onset", step: step, at: at, late_ms: lateMs, ready_at: readyAt};
    },
    clientError: function (step, message) {
      return {type: "client_error", step: step, message: String(message).slice(0, 500)};
    },
    ping: function () { return {type: "ping", t: Date.now()}; }
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
    this.bestRtt = Infinity;
    this.delay = 500;
    this.closedFor = null;
    this.ws = null;
    this.pinger = null;
    this.burst = 0;         // pings of the opening burst still to send
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
      self.burst = (self.opts.pingBurst || PING_BURST) - 1;
      self.send(msg.ping());
      self.pinger = global.setInterval(function () { self.send(msg.ping()); }, self.opts.pingMs || 3000);
    };
    ws.onmessage = function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (data.type === "group.state") {
        if (self.opts.ack) self.send(msg.ack(data.version));
        if (data.version < self.version) return;          // older: ignore
        var fresh = data.version > self.version;
        self.version = data.version;
        self.state = data;
        if (fresh && self.opts.onState) self.opts.onState(data, self);
      } else if (data.type === "group.content") {
        if (self.opts.onContent) self.opts.onContent(data, self);
      } else if (data.type === "pong") {
        var now = Date.now(), rtt = now - data.t;
        if (rtt <= self.bestRtt) {
          self.bestRtt = rtt;
          self.offsetMs = data.server_ms - (data.t + rtt / 2);
          if (self.opts.onClock) self.opts.onClock(self.offsetMs, rtt, self);
        }
        if (self.burst > 0) {
          self.burst -= 1;
          global.setTimeout(function () { self.send(msg.ping()); }, PING_GAP_MS);
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
    return Date.now() + (this.offsetMs || 0);
  };

  GroupSocket.prototype.status = function (text) {
    if (this.opts.onStatus) this.opts.onStatus(text, this);
  };

  global.EnsembleProtocol = {CLOSE: CLOSE, FINAL: FINAL, PING_BURST: PING_BURST, TYPES: TYPES, msg: msg, wsUrl: wsUrl, GroupSocket: GroupSocket};
})(window);
