import time
import urllib.error
import urllib.request

from project.serve import redact_path
from tests.core.serving import live_server


def test_redact_path_drops_queries_and_tokens():
    assert redact_path("/run/3/start/?tc=abc&PROLIFIC_PID=p1") == "/run/3/start/?[redacted]"
    assert redact_path("/run/3/verify/tok.en:123/") == "/run/3/verify/[redacted]/"
    assert redact_path("/healthz") == "/healthz"
    assert redact_path(b"/x") == "[unreadable path]"


def test_server_access_log_holds_no_ticket_or_prolific_id(tmp_path):
    """A real server started the way `make run` starts it logs the request
    without its credentials."""
    secret, pid = "TICKETSECRET123", "PROLIFICPID456"
    with live_server(tmp_path) as server:
        for url in (f"/run/1/start/?tc={secret}&PROLIFIC_PID={pid}", f"/run/1/verify/{secret}/"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{server['port']}{url}", timeout=5)
            except urllib.error.HTTPError:
                pass
        time.sleep(0.5)
    log = server["log"]
    text = log.read_text()
    assert "/run/1/start/?[redacted]" in text
    assert secret not in text and pid not in text
