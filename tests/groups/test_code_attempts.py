"""Wrong-code limits (issue 14 cause 3, issue 18, issue 19): counted atomically before a
code is evaluated per browser (signed cookie); per address (higher) only wrong codes count,
with evaluation slots that keep a parallel burst within the limit while a room behind one
address enters its right code at once. X-Forwarded-For only from trusted proxies. Runs on
the in-process cache and, with REDIS_URL, on Redis."""

from __future__ import annotations

import secrets
import threading
from collections import Counter

import pytest
from django.conf import settings
from django.test import Client, RequestFactory, override_settings

from groups import codes
from tests.threads import in_threads

URL = "/group/session/attach/participant/"


def _address() -> str:
    """An address of this test alone: counters of other tests (and runs) never meet."""
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


def _browser(address: str) -> Client:
    """A browser that has opened the attach page once (and so holds its id cookie)."""
    client = Client(REMOTE_ADDR=address)
    assert client.get(URL).status_code == 200
    assert codes.BROWSER_COOKIE in client.cookies
    return client


def _burst(client_for, n: int, code: str = "ZZZZ") -> Counter:
    """``n`` codes (wrong by default) posted at once, the i-th by ``client_for(i)``; their statuses."""
    statuses: Counter = Counter()
    lock = threading.Lock()

    def post(client):
        status = client.post(URL, {"code": code}).status_code
        with lock:
            statuses[status] += 1

    clients = [client_for(i) for i in range(n)]
    in_threads([lambda c=c: post(c) for c in clients], timeout=120)
    return statuses


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_wrong_codes_from_one_browser_evaluates_at_most_the_limit():
    browser = _browser(_address())
    cookie = browser.cookies[codes.BROWSER_COOKIE].value

    def same_browser(_i):
        c = Client(REMOTE_ADDR=browser.defaults["REMOTE_ADDR"])
        c.cookies[codes.BROWSER_COOKIE] = cookie
        return c

    statuses = _burst(same_browser, 150)
    print(f"150-way burst, one browser: {statuses[400]} codes evaluated, {statuses[429]} refused 429")
    assert statuses[400] <= settings.CODE_ATTEMPTS_PER_MINUTE
    assert statuses[400] + statuses[429] == 150


@pytest.mark.django_db(transaction=True)
def test_a_burst_without_cookies_from_one_address_evaluates_at_most_the_limit():
    address = _address()
    statuses = _burst(lambda _i: Client(REMOTE_ADDR=address), 150)  # each post a cookie-less client
    print(f"150-way burst, no cookies: {statuses[400]} codes evaluated, {statuses[429]} refused 429")
    assert statuses[400] <= settings.CODE_ATTEMPTS_PER_MINUTE
    assert statuses[400] + statuses[429] == 150


@pytest.mark.django_db(transaction=True)
@override_settings(CODE_ATTEMPTS_PER_MINUTE_PER_ADDRESS=20)
def test_a_burst_of_wrong_codes_from_many_browsers_of_one_address_evaluates_at_most_its_limit():
    address = _address()
    statuses = _burst(lambda _i: _browser(address), 120)  # a guesser who collected 120 browser ids
    print(f"120-way burst, 120 browsers of one address: {statuses[400]} evaluated, {statuses[429]} refused 429")
    assert statuses[400] <= 20 and statuses[400] + statuses[429] == 120
    assert Client(REMOTE_ADDR=address).get(URL).status_code == 429  # its minute is used up


@pytest.mark.django_db(transaction=True)
@override_settings(CODE_ATTEMPTS_PER_MINUTE_PER_ADDRESS=5)
def test_a_room_behind_one_address_enters_its_right_code_at_once(gs):
    """A lab (or bots from one machine) behind one NAT address: 60 browsers post the right
    code at the same moment, 12 times the address's limit; every one gets in."""
    address = _address()
    statuses = _burst(lambda _i: _browser(address), 60, code=gs.participant_code)
    assert statuses == Counter({302: 60}), statuses
    for _ in range(5):  # and the address's wrong codes are still limited
        assert _browser(address).post(URL, {"code": "ZZZZ"}).status_code == 400
    assert Client(REMOTE_ADDR=address).post(URL, {"code": gs.participant_code}).status_code == 429


@pytest.mark.django_db
@override_settings(CODE_ATTEMPTS_PER_MINUTE_PER_ADDRESS=2, CODE_ATTEMPTS_ADDRESS_WAIT_SECONDS=0.3)
def test_a_code_waits_for_a_slot_while_the_addresss_codes_are_being_looked_at():
    address = _address()
    first, second, third = (codes.Client(browser=f"b:{i}{address}", address=address) for i in range(3))
    assert codes.begin_attempt(kind=codes.PARTICIPANT, client=first)
    assert codes.begin_attempt(kind=codes.PARTICIPANT, client=second)
    assert not codes.begin_attempt(kind=codes.PARTICIPANT, client=third)  # both slots busy for 0.3 s: 429
    codes.attempt_succeeded(kind=codes.PARTICIPANT, client=first)
    assert codes.begin_attempt(kind=codes.PARTICIPANT, client=third)  # a right code freed its slot
    codes.attempt_failed(kind=codes.PARTICIPANT, client=second)
    codes.attempt_failed(kind=codes.PARTICIPANT, client=third)
    assert codes.is_rate_limited(kind=codes.PARTICIPANT, client=first)  # two wrong codes: the address's limit
    assert not codes.begin_attempt(kind=codes.PARTICIPANT, client=first)


@pytest.mark.django_db
def test_one_browsers_typos_do_not_lock_out_another_browser_at_the_same_address(gs):
    address = _address()
    typist, neighbour = _browser(address), _browser(address)
    for _ in range(settings.CODE_ATTEMPTS_PER_MINUTE):
        assert typist.post(URL, {"code": "ZZZZ"}).status_code == 400
    assert typist.post(URL, {"code": gs.participant_code}).status_code == 429  # until its minute is over
    assert typist.get(URL).status_code == 429
    assert neighbour.post(URL, {"code": "ZZZZ"}).status_code == 400
    assert neighbour.post(URL, {"code": gs.participant_code}).status_code == 302


@pytest.mark.django_db
@override_settings(CODE_ATTEMPTS_PER_MINUTE=3, CODE_ATTEMPTS_PER_MINUTE_PER_ADDRESS=5)
def test_the_address_has_a_higher_limit_of_its_own(gs):
    address = _address()
    first, second, third = _browser(address), _browser(address), _browser(address)
    assert [first.post(URL, {"code": "ZZZZ"}).status_code for _ in range(4)] == [400, 400, 400, 429]
    assert [second.post(URL, {"code": "ZZZZ"}).status_code for _ in range(3)] == [400, 400, 429]
    assert third.post(URL, {"code": gs.participant_code}).status_code == 429  # the address is used up
    assert _browser(_address()).post(URL, {"code": "ZZZZ"}).status_code == 400  # another address is not


@pytest.mark.django_db
@override_settings(CODE_ATTEMPTS_PER_MINUTE=2, CODE_ATTEMPTS_PER_MINUTE_PER_ADDRESS=3)
def test_right_codes_use_up_nothing(gs):
    address = _address()
    for _ in range(6):  # a room entering the right code, one browser after another
        assert _browser(address).post(URL, {"code": gs.participant_code}).status_code == 302
    assert _browser(address).post(URL, {"code": "ZZZZ"}).status_code == 400


@pytest.mark.django_db
def test_dropping_the_cookie_gains_nothing():
    address = _address()
    for _ in range(settings.CODE_ATTEMPTS_PER_MINUTE):
        assert Client(REMOTE_ADDR=address).post(URL, {"code": "ZZZZ"}).status_code == 400
    refused = Client(REMOTE_ADDR=address).post(URL, {"code": "ZZZZ"})
    assert refused.status_code == 429 and "Too many wrong codes" in refused.content.decode()
    assert _browser(address).post(URL, {"code": "ZZZZ"}).status_code == 400  # a browser with its cookie may


@pytest.mark.django_db
def test_a_forged_browser_cookie_counts_as_no_cookie():
    address = _address()
    for _ in range(settings.CODE_ATTEMPTS_PER_MINUTE):
        Client(REMOTE_ADDR=address).post(URL, {"code": "ZZZZ"})
    forged = Client(REMOTE_ADDR=address)
    forged.cookies[codes.BROWSER_COOKIE] = "made-up-id:not-signed"
    assert forged.post(URL, {"code": "ZZZZ"}).status_code == 429


@override_settings(TRUSTED_PROXIES=["192.0.2.10", "198.51.100.0/24"])
def test_forwarded_for_is_believed_only_from_trusted_proxies():
    make = RequestFactory().get
    assert codes.client_address(make("/", REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="10.1.1.1")) == "203.0.113.5"
    via_proxy = make("/", REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    assert codes.client_address(via_proxy) == "203.0.113.7"  # the left entry is the client's own claim
    chain = make("/", REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="203.0.113.8, 198.51.100.3")
    assert codes.client_address(chain) == "203.0.113.8"
    assert codes.client_address(make("/", REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="nonsense")) == "192.0.2.10"
    assert codes.client_address(make("/", REMOTE_ADDR="192.0.2.10")) == "192.0.2.10"


@pytest.mark.django_db
@override_settings(TRUSTED_PROXIES=["192.0.2.10"])
def test_clients_behind_a_trusted_proxy_have_their_own_address_counters():
    with override_settings(CODE_ATTEMPTS_PER_MINUTE_PER_ADDRESS=2):
        behind = [Client(REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR=_address()) for _ in range(2)]
        for client in behind:
            statuses = [client.post(URL, {"code": "ZZZZ"}).status_code for _ in range(3)]
            assert statuses == [400, 400, 429]
        spoofed = Client(REMOTE_ADDR=_address(), HTTP_X_FORWARDED_FOR="1.2.3.4")
        assert [spoofed.post(URL, {"code": "ZZZZ"}).status_code for _ in range(3)] == [400, 400, 429]
        spoofed.defaults["HTTP_X_FORWARDED_FOR"] = "5.6.7.8"  # a new claim is not a new address
        assert spoofed.post(URL, {"code": "ZZZZ"}).status_code == 429


@pytest.mark.django_db
def test_experimenter_codes_are_counted_apart(staff, gs):
    address = _address()
    client = _browser(address)
    client.force_login(staff)
    for _ in range(settings.CODE_ATTEMPTS_PER_MINUTE):
        assert client.post(URL, {"code": "ZZZZ"}).status_code == 400
    exp_url = "/group/session/attach/experimenter/"
    assert client.post(exp_url, {"code": "ZZZZ"}).status_code == 400
    assert client.post(exp_url, {"code": gs.experimenter_code}).status_code == 302


@pytest.mark.django_db
@override_settings(REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there: the counters are down
def test_while_the_counters_are_down_no_code_is_evaluated(gs, caplog):
    client = Client(REMOTE_ADDR=_address())
    for response in (client.get(URL), client.post(URL, {"code": gs.participant_code})):
        assert response.status_code == 503
        assert b'data-error-code="codes_unavailable"' in response.content
    assert "attempt counters unavailable" in caplog.text and gs.participant_code not in caplog.text


@pytest.mark.django_db
@override_settings(CODE_ATTEMPTS_PER_MINUTE_PER_ADDRESS=1, CODE_ATTEMPTS_ADDRESS_WAIT_SECONDS=0.1)
def test_a_check_that_fails_on_the_server_frees_its_slot_and_counts_no_wrong_code(gs, monkeypatch):
    def broken(code, **kwargs):
        raise RuntimeError("the database went away")

    address = _address()
    monkeypatch.setattr("groups.selectors.find_by_participant_code", broken)
    assert Client(REMOTE_ADDR=address, raise_request_exception=False).post(URL, {"code": "ZZZZ"}).status_code == 500
    monkeypatch.undo()
    assert Client(REMOTE_ADDR=address).post(URL, {"code": gs.participant_code}).status_code == 302
