"""The clock-offset rule (realtime/clock.py) and its mirror in static/js/protocol.js: the
same constants and the same answers on the same cases (the JS run by node)."""

import json
import shutil
import subprocess

import pytest
from django.conf import settings

from realtime import clock

CASES = {
    "sample": [[1000.0, 1010.0, 1105.0], [0.0, 4.0, 2.0], [500.0, 2500.0, 1500.0]],
    "better": [[None, 900.0], [5.0, 5.0], [5.0, 6.0], [30.0, 2.0]],
    "next_ping_ms": [
        [None, 0, 50.0],
        [800.0, 3, 800.0],
        [21.0, 10, 30.0],
        [20.0, 0, 20.0],
        [3.0, 5, 9.0],
        [800.0, 50, 900.0],
    ],
    "quiet_ping_ms": [[10000.0, 0.0, 9000.0, 0.0], [10000.0, 50.0, 9000.0, 0.5], [10000.0, 0.0, 10600.0, 0.99]],
    "holds_ack": [
        ["running", 3, None],
        ["running", 3, 2],
        ["running", 3, 3],
        ["paused", 4, 3],
        ["waiting", 0, None],
        ["running", None, 2],
        ["ended", 5, 4],
    ],
}


def _python() -> dict:
    return {name: [getattr(clock, name)(*args) for args in cases] for name, cases in CASES.items()}


def test_one_pong_gives_the_offset_at_the_midpoint_of_its_round_trip_and_the_smallest_round_trip_wins():
    assert clock.sample(1000.0, 1010.0, 1105.0) == (100.0, 10.0)  # server 1105 at this clock's 1005
    assert clock.better(None, 900.0) and clock.better(5.0, 5.0) and not clock.better(5.0, 6.0)


def test_quick_pings_until_a_short_round_trip_or_the_limit_then_the_regular_ones():
    assert clock.next_ping_ms(None, 0, 50.0) == clock.PING_GAP_MS  # nothing good yet: again soon
    assert clock.next_ping_ms(800.0, 3, 1200.0) == 1200.0  # a loaded server: no sooner than its round trip
    assert clock.next_ping_ms(clock.GOOD_RTT_MS, 0, 30.0) is None  # good enough: every PING_MS
    assert clock.next_ping_ms(800.0, clock.FAST_PINGS, 800.0) is None  # a slow network: stop hurrying


def test_the_quiet_ping_follows_the_steps_onset_on_this_clock_and_not_a_past_one():
    assert clock.quiet_ping_ms(10000.0, 0.0, 9000.0, 0.0) == 1000.0 + clock.QUIET_PING_MS
    assert clock.quiet_ping_ms(10000.0, 50.0, 9000.0, 0.5) == 950.0 + clock.QUIET_PING_MS + clock.QUIET_SPREAD_MS / 2
    assert clock.quiet_ping_ms(10000.0, 0.0, 10600.0, 0.99) is None  # joined after it: no quiet ping


def test_a_page_holds_the_ack_of_a_step_it_has_not_shown_and_acks_the_rest_at_once():
    assert clock.holds_ack("running", 3, None) and clock.holds_ack("running", 3, 2)  # a new step: at its reveal
    assert not clock.holds_ack("running", 3, 3)  # the step on screen (a count changed): at once
    assert not clock.holds_ack("paused", 4, 3) and not clock.holds_ack("waiting", 0, None)
    assert clock.ACK_HOLD_MS < 1000  # below the server's resend (GROUP_ACK_RESEND_SECONDS)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_protocol_js_runs_the_same_rule():
    source = (settings.BASE_DIR / "static/js/protocol.js").read_text()
    script = (
        "var window = {location: {protocol: 'http:', host: 'x'}};\n"
        + source
        + "\nvar c = window.EnsembleProtocol.clock;"
        f"\nvar cases = {json.dumps(CASES)};\nvar out = {{}};"
        "\nvar names = {sample: 'sample', better: 'better', next_ping_ms: 'nextPingMs', quiet_ping_ms: 'quietPingMs',"
        " holds_ack: 'holdsAck'};"
        "\nfor (var k in cases) out[k] = cases[k].map(function (a) { var r = c[names[k]].apply(null, a);"
        " return (r && r.rtt !== undefined) ? [r.offset, r.rtt] : (r === undefined ? null : r); });"
        "\nout.constants = [c.PING_MS, c.PING_GAP_MS, c.GOOD_RTT_MS, c.FAST_PINGS, c.QUIET_PING_MS, c.QUIET_SPREAD_MS,"
        " c.ACK_HOLD_MS];"
        "\nconsole.log(JSON.stringify(out));"
    )
    done = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30, check=True)
    js = json.loads(done.stdout)
    constants = [clock.PING_MS, clock.PING_GAP_MS, clock.GOOD_RTT_MS, clock.FAST_PINGS, clock.QUIET_PING_MS,
                 clock.QUIET_SPREAD_MS, clock.ACK_HOLD_MS]  # fmt: skip
    assert js.pop("constants") == constants
    assert js == json.loads(json.dumps({k: [list(r) if isinstance(r, tuple) else r for r in v]
                                        for k, v in _python().items()}))  # fmt: skip


# The page's clock (protocol.js ``now``): performance.now() at times (ms) with the wall clock
# ``truth`` ms ahead of it, read through a Date.now() that truncates to the millisecond.
PAGE_CLOCK = """
var perf = 0, truth = 1700000000000.75;
var window = {location: {protocol: 'http:', host: 'x'}, performance: {now: function () { return perf; }}};
Date.now = function () { return Math.floor(perf + truth); };
%s
var P = window.EnsembleProtocol, out = {reads: [], truncated: [], frame: null, jumped: null};
[0.1, 0.4, 0.26, 0.9, 0.61].forEach(function (t) { perf = t; out.reads.push(P.now() - truth - t);
                                                   out.truncated.push(Date.now() - truth - t); });
out.frame = P.epochOf(0.05) - truth - 0.05;
truth += 3600000;  // the computer slept an hour: performance.now() stood still, the wall clock did not
perf = 1.2; out.jumped = P.now() - truth - perf;
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_protocol_js_reads_its_clock_below_the_millisecond_and_follows_a_jump_of_the_wall_clock():
    """Date.now() truncates: each reading is up to 1 ms early, which at a frame's edge is the
    difference between two frames. The page's now() is performance.now() plus the largest
    recent Date.now() - performance.now(), so its error shrinks as readings fall on both sides
    of a millisecond, and a jump (a sleep, the clock set) starts it again."""
    source = (settings.BASE_DIR / "static/js/protocol.js").read_text()
    done = subprocess.run(["node", "-e", PAGE_CLOCK % source], capture_output=True, text=True, timeout=30, check=True)
    out = json.loads(done.stdout)
    assert max(map(abs, out["truncated"])) > 0.5  # what Date.now() alone gave
    assert all(-1 < error <= 0.001 for error in out["reads"])
    assert abs(out["reads"][-1]) < 0.02 and abs(out["frame"]) < 0.02  # two readings either side of a ms edge
    assert -1 < out["jumped"] <= 0.001  # started again from the new wall clock, not an hour off


# GroupSocket's acknowledgements with a fake WebSocket and timers: a live page (shownStep)
# holds the ack of a new step's state until releaseAck, or until the timer; other states at once.
ACKS = """
var timers = [], sent = [];
var window = {location: {protocol: 'http:', host: 'x'}, performance: {now: function () { return 0; }},
              setTimeout: function (f, ms) { timers.push({f: f, ms: ms}); return timers.length; },
              clearTimeout: function (id) { if (id) timers[id - 1].f = null; },
              setInterval: function () { return 0; }, clearInterval: function () {}};
function WebSocket() { this.readyState = 1; this.send = function (t) { sent.push(JSON.parse(t)); }; }
WebSocket.OPEN = 1;
%s
var shown = 2, out = {};
var s = new window.EnsembleProtocol.GroupSocket('/ws/x/', {ack: true, shownStep: function () { return shown; }});
function state(v, phase, step) { s.ws.onmessage({data: JSON.stringify({type: 'group.state', version: v, phase: phase,
                                                                         step: step})}); }
function acks() { return sent.filter(function (m) { return m.type === 'ack'; })
                             .map(function (m) { return m.version; }); }
state(10, 'running', 3); out.held = acks();                      // step 3 is new: held
state(11, 'running', 3); out.still = acks();                     // still not revealed: held (the newest)
shown = 3; s.releaseAck(); out.released = acks();                // revealed: 11 goes
state(12, 'running', 3); out.same = acks();                      // the step on screen: at once
state(13, 'running', 4); out.ms = timers[timers.length - 1].ms;  // never revealed: the timer sends it
timers[timers.length - 1].f(); out.timer = acks();
state(14, 'paused', 4); out.paused = acks();
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_protocol_js_holds_a_new_steps_ack_until_the_reveal_or_the_timer():
    source = (settings.BASE_DIR / "static/js/protocol.js").read_text()
    done = subprocess.run(["node", "-e", ACKS % source], capture_output=True, text=True, timeout=30, check=True)
    out = json.loads(done.stdout)
    assert out["held"] == [] and out["still"] == []
    assert out["released"] == [11]
    assert out["same"] == [11, 12]
    assert out["ms"] == clock.ACK_HOLD_MS and out["timer"] == [11, 12, 13]
    assert out["paused"] == [11, 12, 13, 14]
