"""Definition -> database, atomically.

Semantics (also in docs/definitions.md):

- A file whose slug is new creates an experiment; a file whose slug exists
  updates that experiment in place (same id, tickets and sessions kept).
  ``create_only=True`` refuses to touch an existing experiment.
- Forms and questions made from a file are owned by the experiment and are
  upserted by (owner, name) / (owner, key), so responses that reference them
  survive a reload. Data formats are shared value objects, reused by signature.
  The experiment's form links (ExperimentXForm) are rewritten to match the file.
  Owned forms and questions the file no longer mentions are deleted unless a
  response (or another link) still refers to them.
- Refused against the database: changing ``is_group`` of an experiment that has
  sessions; changing the form sequence (names, handlers, loops) while sessions
  are unfinished, unless ``force=True`` (a running participant would land on a
  different form).
- A file that equals the experiment as stored changes nothing ("unchanged").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from runner.models import (
    DataFormat,
    Experiment,
    ExperimentXForm,
    Form,
    FormXQuestion,
    Question,
    Response,
)

from .dumper import experiment_to_definition
from .issues import DefinitionError, Issue
from .schema import EXPERIMENT_FIELDS, ExperimentDef, QuestionDef, definition_to_dict
from .validate import validate_text

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


@dataclass
class LoadResult:
    experiment: Experiment
    status: str  # created | updated | unchanged
    warnings: list[Issue] = field(default_factory=list)


def parse_definition(*, text: str, source: str = "<definition>") -> tuple[ExperimentDef, list[Issue]]:
    """Validate definition text; return (definition, warnings) or raise DefinitionError listing every error."""
    definition, issues = validate_text(text)
    if definition is None:
        raise DefinitionError(issues, source)
    return definition, [i for i in issues if i.warning]


def load_text(*, text: str, source: str = "<definition>", create_only: bool = False, force: bool = False) -> LoadResult:
    """Validate and load definition text in one transaction. Raises DefinitionError; then nothing is changed."""
    definition, warnings = parse_definition(text=text, source=source)
    try:
        experiment, status = load_definition(definition=definition, create_only=create_only, force=force)
    except DefinitionError as exc:
        raise DefinitionError(exc.issues + warnings, source) from None
    except IntegrityError as exc:  # e.g. the same new slug loaded twice at the same moment
        issue = Issue(definition.line("slug"), f"the database refused the change, try again ({exc})")
        raise DefinitionError([issue], source) from None
    return LoadResult(experiment=experiment, status=status, warnings=warnings)


def load_file(*, path: str | Path, create_only: bool = False, force: bool = False) -> LoadResult:
    """Load a definition file (see ``load_text``). An unreadable file is a DefinitionError on line 1."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError([Issue(1, f"cannot read the file: {exc}")], str(path)) from None
    return load_text(text=text, source=str(path), create_only=create_only, force=force)


def load_definition(
    *, definition: ExperimentDef, create_only: bool = False, force: bool = False
) -> tuple[Experiment, str]:
    """Create or update the experiment a validated definition describes.

    Runs in ``transaction.atomic`` and locks the existing experiment row
    (``select_for_update``). Returns (experiment, status). Raises DefinitionError
    for conflicts with the database; then nothing is written.
    """
    with transaction.atomic():
        existing = Experiment.objects.select_for_update().filter(slug=definition.slug).first()
        if existing is not None:
            _check_update(existing, definition, create_only=create_only, force=force)
            current = definition_to_dict(experiment_to_definition(existing))
            if current == definition_to_dict(definition):
                return existing, UNCHANGED
        experiment = existing or Experiment(slug=definition.slug)
        for attr in EXPERIMENT_FIELDS:
            setattr(experiment, attr, getattr(definition, attr))
        experiment.save()
        _write_forms(experiment, definition)
        return experiment, (UPDATED if existing else CREATED)


def _check_update(existing: Experiment, definition: ExperimentDef, *, create_only: bool, force: bool) -> None:
    issues = []
    if create_only:
        issues.append(
            Issue(
                definition.line("slug"),
                f"an experiment with slug '{definition.slug}' already exists (id {existing.pk}); "
                "--create-only refuses to update it (change the slug, or load without --create-only)",
            )
        )
    has_sessions = existing.sessions.exists() or existing.group_sessions.exists()
    if existing.is_group != definition.is_group and has_sessions:
        issues.append(
            Issue(
                definition.line("is_group"),
                f"experiment '{definition.slug}' already has sessions; is_group cannot change "
                f"({existing.is_group} -> {definition.is_group}). Load it under a new slug instead.",
            )
        )
    unfinished = existing.sessions.filter(end__isnull=True).count()
    if unfinished and not force and experiment_to_definition(existing).structure() != definition.structure():
        issues.append(
            Issue(
                definition.line("forms"),
                f"experiment '{definition.slug}' has {unfinished} unfinished session(s); changing the form sequence "
                "(names, order, handlers, loops) would move them to other forms. Finish or exclude them, "
                "or load with --force.",
            )
        )
    if issues:
        raise DefinitionError(issues)


def _data_format(question: QuestionDef) -> DataFormat:
    df_type, choices, range_ = question.data_format()
    signature = DataFormat.make_signature(df_type, choices, range_)
    data_format, _ = DataFormat.objects.get_or_create(
        signature=signature, defaults={"df_type": df_type, "choices": choices, "range": range_}
    )
    return data_format


def _write_questions(experiment: Experiment, definition: ExperimentDef) -> dict[str, Question]:
    existing = {q.key: q for q in Question.objects.filter(owner=experiment)}
    written: dict[str, Question] = {}
    for form in definition.forms:
        for qdef in form.questions:
            if qdef.key in written:
                continue
            question = existing.get(qdef.key) or Question(owner=experiment, key=qdef.key)
            question.text, question.widget = qdef.text, qdef.widget
            question.data_format = _data_format(qdef)
            question.save()
            written[qdef.key] = question
    return written


def _write_forms(experiment: Experiment, definition: ExperimentDef) -> None:
    questions = _write_questions(experiment, definition)
    existing = {f.name: f for f in Form.objects.filter(owner=experiment)}
    forms: dict[str, Form] = {}
    for fdef in definition.forms:
        form = existing.get(fdef.name) or Form(owner=experiment, name=fdef.name)
        form.title, form.header, form.footer = fdef.title, fdef.header, fdef.footer
        form.save()
        FormXQuestion.objects.filter(form=form).delete()
        FormXQuestion.objects.bulk_create(
            FormXQuestion(form=form, question=questions[q.key], order=i, required=q.required)
            for i, q in enumerate(fdef.questions, start=1)
        )
        forms[fdef.name] = form
    ExperimentXForm.objects.filter(experiment=experiment).delete()
    ExperimentXForm.objects.bulk_create(
        ExperimentXForm(
            experiment=experiment,
            form=forms[fdef.name],
            order=order,
            handler=fdef.handler,
            condition_script=fdef.condition_script,
            stimulus_script=fdef.stimulus_script,
            repeat=fdef.repeat,
            goto=fdef.goto,
            break_loop_button=fdef.break_loop_button,
            break_loop_button_text=fdef.break_loop_button_text,
            continue_button_text=fdef.continue_button_text,
            jspsych_width=fdef.jspsych_width,
            flow=fdef.flow,
        )
        for order, fdef in enumerate(definition.forms, start=1)
    )
    _remove_orphans(
        experiment, keep_forms={f.pk for f in forms.values()}, keep_questions={q.pk for q in questions.values()}
    )


def _remove_orphans(experiment: Experiment, *, keep_forms: set[int], keep_questions: set[int]) -> None:
    """Delete owned forms/questions the file dropped, unless anything still refers to them."""
    for form in Form.objects.filter(owner=experiment).exclude(pk__in=keep_forms):
        if ExperimentXForm.objects.filter(form=form).exists() or Response.objects.filter(form=form).exists():
            continue
        try:
            with transaction.atomic():
                form.delete()
        except ProtectedError:
            continue
    for question in Question.objects.filter(owner=experiment).exclude(pk__in=keep_questions):
        if (
            FormXQuestion.objects.filter(question=question).exists()
            or Response.objects.filter(question=question).exists()
        ):
            continue
        try:
            with transaction.atomic():
                question.delete()
        except ProtectedError:
            continue
