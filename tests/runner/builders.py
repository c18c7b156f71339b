"""Build small experiments for runner tests (factories, no definition files)."""

from __future__ import annotations

from runner.models import DataFormat, Session
from tests.factories import (
    DataFormatFactory,
    ExperimentFactory,
    ExperimentXFormFactory,
    FormFactory,
    FormXQuestionFactory,
    QuestionFactory,
    TicketFactory,
)

CB = "tests.runner.scripts"


def data_format(df_type="enum", choices=None, range_=None) -> DataFormat:
    choices = choices or ([] if df_type != "enum" else ["Yes", "No"])
    return DataFormatFactory(df_type=df_type, choices=choices, range=range_ or {})


def build_experiment(forms: list[dict], **kwargs):
    """``forms``: dicts with name, handler, questions (key, widget, df_type, choices, range,
    required), repeat, goto, stimulus_script, condition_script, break_loop_button, header."""
    experiment = ExperimentFactory(**kwargs)
    for order, spec in enumerate(forms, start=1):
        form = FormFactory(
            name=spec.get("name", f"f{order}-{experiment.slug}"), header=spec.get("header", ""), owner=experiment
        )
        for q_order, q in enumerate(spec.get("questions", []), start=1):
            fmt = data_format(q.get("df_type", "enum"), q.get("choices"), q.get("range"))
            question = QuestionFactory(
                key=q["key"],
                text=q.get("text", q["key"]),
                widget=q.get("widget", "radiogroup"),
                data_format=fmt,
                owner=experiment,
            )
            FormXQuestionFactory(form=form, question=question, order=q_order, required=q.get("required", True))
        ExperimentXFormFactory(
            experiment=experiment,
            form=form,
            order=order,
            handler=spec.get("handler", "form_generic"),
            repeat=spec.get("repeat"),
            goto=spec.get("goto"),
            stimulus_script=spec.get("stimulus_script", ""),
            condition_script=spec.get("condition_script", ""),
            break_loop_button=spec.get("break_loop_button", False),
        )
    return experiment


def build_lockstep_experiment(repeat: int, **kwargs):
    """A group experiment: a ``group_trial`` form (one Yes/No question ``warm``) looped
    ``repeat`` times, then the end."""
    return build_experiment(
        [{"name": "trial", "handler": "group_trial", "questions": [{"key": "warm", "choices": ["Yes", "No"]}],
          "repeat": repeat, "goto": 1},
         {"name": "end", "handler": "form_end_session"}],
        is_group=True, **kwargs,
    )  # fmt: skip


def ticket(experiment, **kwargs):
    return TicketFactory(experiment=experiment, **kwargs)


def start(client, experiment, tkt=None, **params):
    """Follow the start link; returns the new (or resumed) Session."""
    tkt = tkt or ticket(experiment)
    response = client.get(f"/run/{experiment.pk}/start/", {"tc": tkt.code, **params})
    assert response.status_code == 302, response.content[:500]
    assert response["Location"] == f"/run/{experiment.pk}/"
    return Session.objects.filter(experiment=experiment).order_by("-pk").first()


def current(session) -> dict:
    session.refresh_from_db()
    return session.state.get("current") or {}


def submit(client, session, answers: dict | None = None, *, ident: dict | None = None, **extra):
    """POST ``answers`` (question key -> value) for the visit on screen (or ``ident``)."""
    cur = ident or current(session)
    data = {
        "_order": cur["order"],
        "_visit": cur["visit"],
        "_nonce": cur["nonce"],
        "_tz": "Europe/Berlin",
        "_client_ms": "1700000000000",
    }
    for key, value in (answers or {}).items():
        data[key if key.startswith("_") else f"q-{key}"] = value
    data.update(extra)
    return client.post(f"/run/{session.experiment_id}/", data)
