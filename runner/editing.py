"""Editor operations on whole experiments: copy, delete."""

from __future__ import annotations

from django.db import transaction
from django.db.models import ProtectedError

from runner.models import Experiment, ExperimentXForm, Form, FormXQuestion, Question

SLUG_MAX = 100


def free_copy_slug(slug: str) -> str:
    """The first unused ``<slug>-copy-N`` (N from 1), shortened to fit the slug field."""
    n = 1
    while True:
        suffix = f"-copy-{n}"
        candidate = slug[: SLUG_MAX - len(suffix)] + suffix
        if not Experiment.objects.filter(slug=candidate).exists():
            return candidate
        n += 1


def copy_experiment(*, experiment: Experiment) -> Experiment:
    """Copy an experiment with its form sequence under a new slug ``<slug>-copy-N``.

    Forms and questions owned by the original are duplicated (owned by the copy),
    so editing the copy never changes the original; shared (unowned) forms and
    questions are linked, as in the original. Tickets, sessions and responses are
    not copied. Runs in one transaction.
    """
    with transaction.atomic():
        copy = Experiment.objects.get(pk=experiment.pk)
        copy.pk = None
        copy.slug = free_copy_slug(experiment.slug)
        copy.title = f"{experiment.title} (copy)"[:200]
        copy.save()
        forms = _copy_owned_forms(experiment, copy, _copy_owned_questions(experiment, copy))
        links = list(ExperimentXForm.objects.filter(experiment=experiment).order_by("order"))
        for link in links:
            link.pk, link.experiment = None, copy
            link.form = forms.get(link.form_id, link.form)
        ExperimentXForm.objects.bulk_create(links)
        return copy


def _copy_owned_questions(experiment: Experiment, copy: Experiment) -> dict[int, Question]:
    """The questions ``experiment`` owns, duplicated for ``copy``: {original pk: its copy}."""
    questions: dict[int, Question] = {}
    for question in Question.objects.filter(owner=experiment):
        original_pk = question.pk
        question.pk, question.owner = None, copy
        question.save()
        questions[original_pk] = question
    return questions


def _copy_owned_forms(experiment: Experiment, copy: Experiment, questions: dict[int, Question]) -> dict[int, Form]:
    """The forms ``experiment`` owns, duplicated for ``copy`` with their question links
    (to the copied questions where there is one): {original pk: its copy}."""
    forms: dict[int, Form] = {}
    for form in Form.objects.filter(owner=experiment):
        links = list(FormXQuestion.objects.filter(form=form))
        original_pk = form.pk
        form.pk, form.owner = None, copy
        form.save()
        FormXQuestion.objects.bulk_create(
            FormXQuestion(
                form=form,
                question=questions.get(link.question_id, link.question),
                order=link.order,
                required=link.required,
            )
            for link in links
        )
        forms[original_pk] = form
    return forms


def delete_experiment(*, experiment: Experiment) -> None:
    """Delete an experiment with its form sequence and the forms/questions it owns.

    Its own form links would otherwise protect its owned forms. Anything that holds
    data (sessions, responses, group sessions) still protects it: then ProtectedError
    is raised and nothing is deleted. Runs in one transaction.
    """
    with transaction.atomic():
        if experiment.sessions.exists() or experiment.group_sessions.exists():
            raise ProtectedError("The experiment has sessions; exclude them instead of deleting.", set())
        ExperimentXForm.objects.filter(experiment=experiment).delete()
        experiment.delete()
