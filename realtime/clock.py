"""The clock-offset rule of ``static/js/protocol.js``'s GroupSocket, for the Python clients
that do what the page does (``bots/socket.py``, ``bench/screen_live.py``). Keep the two in
step: ``tests/realtime/test_clock.py`` runs both on the same cases.

A pong gives one sample: ``rtt`` = its arrival minus the ping's ``t`` (the client's clock),
``offset`` = ``server_ms - (t + rtt / 2)`` (server clock minus the client's). Its error is at
most ``rtt / 2`` whatever the delays on the way, so the estimate is the sample with the
smallest round trip the socket ever had (``better``). Under load most round trips are long
(the server's loop is busy with a fan-out or answers; a client's own loop with its frames):
what makes the estimate good is a ping that lands in a quiet moment. So (``next_ping_ms``)
a socket pings again ``PING_GAP_MS`` (or that pong's round trip, if longer) after each pong
while its best round trip is above ``GOOD_RTT_MS`` (one ping in flight at a time: a slow
server gets fewer), at most
``FAST_PINGS`` times after each open, then every ``PING_MS``; and once per step a ping
``QUIET_PING_MS`` after the step's ``starts_at`` (``quiet_ping_ms``: the fan-out is over,
the answers have not begun), spread over ``QUIET_SPREAD_MS`` so that N pages do not ping at
the same instant.

Acknowledgements (``holds_ack``): a page acknowledges the state that starts a step it has not
shown when it reveals that step (after its onset report), at the latest ``ACK_HOLD_MS``
after the state came, and every other state at once. Sent on arrival, N pages' acks reach
the server while it is still writing that state and the step's content to the other pages:
N messages to read, parse and note on the loop doing the delivery, in the window every page
waits in (bench/screen.py measured 84 -> 60 ms to the last page at N=500). After the reveal
they cost nobody a wait; the console sees the page as behind for the lead time at most, and
the hold stays below the server's resend time (``GROUP_ACK_RESEND_SECONDS``, 1 s).
"""

from __future__ import annotations

PING_MS = 3000  # the regular ping (presence and the clock)
PING_GAP_MS = 200  # after a pong, while the estimate is not good yet
# A best round trip at or below this: no more quick pings. Its half bounds the estimate's
# error, and two pages' errors add up in their onsets' spread: at 20 ms, the first steps of
# N=500 protocol clients were spread 8-10 ms by their estimates alone (make bench, no client
# late); at 5 ms, 1.9-2.9 ms (bench/screen.py, two runs). A page whose network never gets
# there stops after FAST_PINGS anyway.
GOOD_RTT_MS = 5.0
# Quick pings after an open, at most: N pages hurrying at once load the server they time
# (50 kept a server of 500 pages busy with pongs for a minute).
FAST_PINGS = 6
QUIET_PING_MS = 100  # after a step's starts_at, plus up to QUIET_SPREAD_MS
QUIET_SPREAD_MS = 400
ACK_HOLD_MS = 500  # a step's first state is acknowledged at its reveal, at the latest this late


def sample(t: float, arrival: float, server_ms: float) -> tuple[float, float]:
    """``(offset, rtt)`` of one pong: the ping's ``t`` and the pong's arrival on the client's
    clock, the server's stamp (ms)."""
    rtt = arrival - t
    return server_ms - (t + rtt / 2), rtt


def better(best_rtt: float | None, rtt: float) -> bool:
    """Whether a sample with this round trip replaces the estimate (the smallest wins)."""
    return best_rtt is None or rtt <= best_rtt


def next_ping_ms(best_rtt: float | None, fast_sent: int, rtt: float) -> float | None:
    """After a pong of round trip ``rtt``: ms until the next quick ping (at least that
    round trip: a busy server gets at most every other moment of pings), or None (the
    regular ping goes on)."""
    if fast_sent >= FAST_PINGS or (best_rtt is not None and best_rtt <= GOOD_RTT_MS):
        return None
    return max(PING_GAP_MS, rtt)


def quiet_ping_ms(starts_at: float, offset: float, now: float, draw: float) -> float | None:
    """ms from ``now`` (client clock) until the ping after a step's ``starts_at`` (server
    clock, by ``offset``), ``draw`` in [0, 1) spreading the pages; None when that moment
    passed (a page that joined late pings on its own schedule)."""
    due = starts_at - offset + QUIET_PING_MS + draw * QUIET_SPREAD_MS
    return due - now if due > now else None


def holds_ack(phase: str | None, step: int | None, shown: int | None) -> bool:
    """Whether a page holds its acknowledgement of a state (``phase``, ``step``) until it
    reveals that step: the state starts a step after ``shown`` (the step on its screen, None
    before any)."""
    return phase == "running" and isinstance(step, int) and (shown is None or step > shown)
