"""Make a fresh running group session for a benchmark and print it as JSON (last line).

    DATABASE_URL=... python bench/prepare.py N [--waiting]

Loads bench/bench_group.yaml (once), an experimenter ``bench-boss`` logged in (the
session cookie is printed), a group session started at step 0 (``--waiting``: not
started, the experimenter starts it), and N participant runs attached to it. Runs and
memberships are bulk-created (a benchmark of the sockets, not of attaching); use
``--http`` style attaching in bench/submit.py for the real path.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.base")


def main(n: int, *, start: bool = True) -> dict:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from exports import pseudonyms
    from groups import services
    from groups.models import Membership
    from runner.models import Experiment, Session, Ticket

    if not Experiment.objects.filter(slug="bench-group").exists():
        call_command("load_experiment", str(ROOT / "bench" / "bench_group.yaml"), verbosity=0)
    experiment = Experiment.objects.get(slug="bench-group")
    User = get_user_model()
    boss = User.objects.filter(username="bench-boss").first()
    if boss is None:
        boss = User.objects.create_user("bench-boss", password=secrets.token_urlsafe(12), is_staff=True)
    gs = services.start_group_session(experiment=experiment, experimenter=boss, size=n)
    ticket = Ticket.objects.get(pk=gs.ticket_id)
    sessions = Session.objects.bulk_create([Session(experiment=experiment, ticket=ticket) for _ in range(n)])
    taken: set[str] = set()
    memberships = []
    scope = pseudonyms.scope_for(experiment)
    for session in sessions:
        pseudonym = services.participant_pseudonym(session, taken, scope=scope)
        taken.add(pseudonym)
        memberships.append(Membership(group_session=gs, session=session, pseudonym=pseudonym, form="trial"))
    Membership.objects.bulk_create(memberships, batch_size=500)
    if start:
        services.group_session_start(group_session=gs, by=boss)
    client = Client()
    client.force_login(boss)
    return {
        "group_session": gs.pk,
        "experiment": experiment.pk,
        "run_cookie": f"{settings.RUN_COOKIE_NAME}{experiment.pk}",
        "run_tokens": [s.run_token for s in sessions],
        "pseudonyms": [m.pseudonym for m in memberships],
        "ticket": ticket.code,
        "login_cookie": f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}",
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), start="--waiting" not in sys.argv[2:])))
