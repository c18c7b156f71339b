"""The bot flag of a run (issue 19): a start link that carries ``bot=<token>`` starts a
session flagged ``Session.is_bot``, left out of exports unless they include bots.

The token is signed with the server's secret key (``django.core.signing``, its own salt),
names the experiment and expires, so only whoever can mint it (``manage.py run_bots``,
the editor's *Rehearse*) flags runs; a participant cannot flag their own run, and a token
minted for one experiment flags nothing in another. Nothing else in the server tells a
bot from a person.
"""

from __future__ import annotations

from django.core import signing

SALT = "ensemble.bot-run"
MAX_AGE_SECONDS = 2 * 24 * 3600


def mint(experiment_id: int) -> str:
    """A token that flags runs of ``experiment_id`` started with it as bots."""
    return signing.dumps({"experiment": int(experiment_id)}, salt=SALT, compress=True)


def is_bot(token: str, experiment_id: int) -> bool:
    """Whether ``token`` is a valid, unexpired bot token of this experiment."""
    if not token or len(token) > 500:
        return False
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE_SECONDS)
    except signing.BadSignature:
        return False
    return isinstance(data, dict) and data.get("experiment") == int(experiment_id)
