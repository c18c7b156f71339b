"""``manage.py exclude``: exclude (or re-include) a session or a participant, with a reason.

    manage.py exclude --session 123 --reason "failed attention check"
    manage.py exclude --experiment SLUG --participant 65PZSHRT19FSF9SJ --reason "withdrew"
    manage.py exclude --session 123 --include

``--participant`` takes the pseudonym shown in that experiment's exports.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from exports import services
from exports.pseudonyms import PseudonymMap, scope_for
from runner.models import Experiment, Session, Subject


def subject_for_pseudonym(*, experiment: Experiment, pseudonym: str) -> Subject | None:
    """The subject of ``experiment`` whose export pseudonym is ``pseudonym`` (None if none)."""
    wanted = pseudonym.strip().upper()
    pseudonyms = PseudonymMap(scope_for(experiment))
    rows = experiment.sessions.exclude(subject=None).values_list("subject_id", "id").iterator(chunk_size=5000)
    for subject_id, session_id in rows:
        if pseudonyms.get(subject_id, session_id) == wanted:
            return Subject.objects.get(pk=subject_id)
    return None


class Command(BaseCommand):
    help = "Exclude a session or a participant from exports (with a reason), or include them again."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--session", type=int, help="Session id.")
        target.add_argument("--participant", help="Participant pseudonym (needs --experiment).")
        parser.add_argument("--experiment", help="Experiment slug (for --participant).")
        parser.add_argument("--reason", default="", help="Why (required unless --include).")
        parser.add_argument("--include", action="store_true", help="Undo an exclusion.")

    def handle(self, *args, session=None, participant=None, experiment=None, reason="", include=False, **opts):
        try:
            if session is not None:
                obj = Session.objects.filter(pk=session).first()
                if obj is None:
                    raise CommandError(f"no session {session}")
                if include:
                    services.include_session(session=obj)
                else:
                    services.exclude_session(session=obj, reason=reason)
                label = f"session {obj.pk}"
            else:
                exp = Experiment.objects.filter(slug=experiment or "").first()
                if exp is None:
                    raise CommandError("--participant needs --experiment SLUG of an existing experiment")
                subject = subject_for_pseudonym(experiment=exp, pseudonym=participant)
                if subject is None:
                    raise CommandError(f"no participant {participant!r} in {exp.slug}")
                if include:
                    services.include_subject(subject=subject)
                else:
                    services.exclude_subject(subject=subject, reason=reason)
                label = f"participant {participant.upper()} (all their sessions)"
        except services.ExportError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{'Included' if include else 'Excluded'} {label}.")
