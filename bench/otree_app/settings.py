"""oTree project of bench/screen.py (the peer baseline): one app, ``screen``, where all
the session's players form one group and, each round, answer a one-question page and
pass a group WaitPage. The benchmark copies this folder into a temporary directory and
runs ``otree prodserver`` there (oTree keeps its database, db.sqlite3, in the current
directory), with ``OTREE_REST_KEY`` set to create the session over the REST API."""

from os import environ

SESSION_CONFIGS = [
    dict(name="screen", app_sequence=["screen"], num_demo_participants=3),
]
SESSION_CONFIG_DEFAULTS = dict(real_world_currency_per_point=1.00, participation_fee=0.00, doc="")
PARTICIPANT_FIELDS = []
SESSION_FIELDS = []
LANGUAGE_CODE = "en"
REAL_WORLD_CURRENCY_CODE = "USD"
USE_POINTS = True
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = environ.get("OTREE_ADMIN_PASSWORD")
DEMO_PAGE_INTRO_HTML = ""
# a benchmark on loopback: the key is set per run by bench/screen_otree.py
SECRET_KEY = environ.get("OTREE_SECRET_KEY", "")
