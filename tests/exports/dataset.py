"""A fixed data set for export tests: a solo and a group experiment, with poison planted.

Ids, uuids and times are fixed so that exports are byte-for-byte reproducible on SQLite and
PostgreSQL. Every secret the SPEC keeps out of default exports is planted here with a
recognisable value (see POISON).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from groups.models import GroupSession, Membership, StepLog
from runner.models import (
    Attribute,
    DataFormat,
    Experiment,
    ExperimentXForm,
    ExperimentXStimulus,
    Form,
    FormXQuestion,
    Question,
    Response,
    Session,
    Stimulus,
    StimulusXAttribute,
    Subject,
    Ticket,
)
from runner.personal import email_hmac, prolific_pid_hmac
from tests.factories import GroupFactory

T0 = datetime(2025, 3, 14, 9, 0, 0, tzinfo=UTC)
EXPORT_NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
PSEUDONYM_KEY = "golden-pseudonym-key"

POISON = {
    "ticket": "POISONticketCODEzzzzzzzzzzzzzzzz",
    "group_ticket": "POISONgroupTICKETzzzzzzzzzzzzzzz",
    "run_token": "POISONrunTOKEN",  # suffixed per session
    "participant_code": "UVUV",
    "experimenter_code": "UWUW",
    "prolific_pid": "POISONprolificPID5f3a",
    "prolific_session_id": "POISONprolificSESSION",
    "sona_code": "POISONsona42",
    "email": "poison.person@example.org",
    "name_first": "Poisonfirstname",
    "name_last": "Poisonlastname",
    "phone": "+44 7700 900123",
    "address": "1 Poison Lane, Nowhere",
}
SUBJECTS = {
    "ann": uuid.UUID("00000000-0000-4000-8000-00000000a001"),
    "bob": uuid.UUID("00000000-0000-4000-8000-00000000b002"),
    "cat": uuid.UUID("00000000-0000-4000-8000-00000000c003"),
    "dan": uuid.UUID("00000000-0000-4000-8000-00000000d004"),
    "eve": uuid.UUID("00000000-0000-4000-8000-00000000e005"),
}


def _fmt(df_type, choices=(), range_=None):
    choices, range_ = list(choices), range_ or {}
    sig = DataFormat.make_signature(df_type, choices, range_)
    return DataFormat.objects.get_or_create(
        signature=sig, defaults={"df_type": df_type, "choices": choices, "range": range_}
    )[0]


def _question(exp, key, text, widget, fmt):
    return Question.objects.create(owner=exp, key=key, text=text, widget=widget, data_format=fmt)


def _form(exp, order, name, handler, questions=(), **loop):
    form = Form.objects.create(owner=exp, name=name)
    for i, q in enumerate(questions, start=1):
        FormXQuestion.objects.create(form=form, question=q, order=i, required=True)
    ExperimentXForm.objects.create(experiment=exp, form=form, order=order, handler=handler, **loop)
    return form


def _subject(name, **extra):
    fields = {
        "email": POISON["email"],
        "name_first": POISON["name_first"],
        "name_last": POISON["name_last"],
        "phone": POISON["phone"],
        "address": POISON["address"],
        "prolific_pid": POISON["prolific_pid"],
        "dob": date(1990, 7, 14),
    }
    fields.update(extra)
    return Subject.objects.create(
        id=SUBJECTS[name],
        email_hmac=email_hmac(fields["email"]),
        prolific_pid_hmac=prolific_pid_hmac(fields["prolific_pid"]),
        **fields,
    )


def _session(pk, exp, subject, ticket, start, end=None, **extra):
    return Session.objects.create(
        id=pk,
        experiment=exp,
        subject=subject,
        ticket=ticket,
        start=start,
        end=end,
        run_token=f"{POISON['run_token']}{pk}",
        prolific_session_id=POISON["prolific_session_id"],
        sona_code=POISON["sona_code"],
        prolific_study_id="study-xyz",
        timezone="Europe/Oslo",
        user_agent="Mozilla/5.0 (Poison)",
        **extra,
    )


def _answer(
    session,
    form,
    order,
    item,
    *,
    visit=1,
    question=None,
    value=None,
    jspsych=None,
    trial_index=None,
    stimulus=None,
    minutes=0,
    group_session=None,
    step=None,
    shared=None,
):
    Response.objects.create(
        session=session,
        subject=session.subject,
        experiment=session.experiment,
        form=form,
        form_order=order,
        visit=visit,
        item=item,
        question=question,
        value=value,
        jspsych_data=jspsych,
        trial_index=trial_index,
        stimulus=stimulus,
        served_at=session.start + timedelta(minutes=minutes),
        submitted_at=session.start + timedelta(minutes=minutes, seconds=30),
        group_session=group_session,
        step=step,
        shared_params=shared,
    )


def build_solo() -> Experiment:
    exp = Experiment.objects.create(slug="golden-solo", title="Golden solo", description="A fixed solo data set.")
    agree = _question(exp, "agree", "I agree to take part.", "radiogroup", _fmt("enum", ["Agree", "Disagree"]))
    rating = _question(
        exp, "rating", "How warm is this colour?", "slider", _fmt("int", range_={"min": 1, "max": 7, "step": 1})
    )
    senses = _question(exp, "senses", "Which senses did you use?", "checkbox", _fmt("enum", ["sight", "hearing"]))
    consent = _form(exp, 1, "consent", "form_consent", [agree])
    rate = _form(exp, 2, "rate", "form_generic", [rating], repeat=2, goto=2)
    task = _form(exp, 3, "task", "form_stimulus_s")
    survey = _form(exp, 4, "survey", "form_generic", [senses])
    _form(exp, 5, "end", "form_end_session")
    red = Stimulus.objects.create(id=301, name="red.png", description="A red square", file_format="png")
    hue = Attribute.objects.create(name="hue", attribute_type="double")
    StimulusXAttribute.objects.create(stimulus=red, attribute=hue, value_double=0.0)
    ExperimentXStimulus.objects.create(experiment=exp, stimulus=red)
    ticket = Ticket.objects.create(experiment=exp, code=POISON["ticket"], label="lab PCs")
    ann, bob, eve = _subject("ann"), _subject("bob", dob=None), _subject("eve")
    runs = [
        (101, ann, T0, T0 + timedelta(minutes=20), {}),
        (102, bob, T0 + timedelta(hours=1), None, {"age": 31}),
        (103, eve, T0 + timedelta(hours=2), T0 + timedelta(hours=2, minutes=5), {"is_preview": True}),
        (
            104,
            eve,
            T0 + timedelta(hours=3),
            T0 + timedelta(hours=3, minutes=9),
            {"excluded": True, "exclusion_reason": "failed attention check"},
        ),
        (105, ann, T0 + timedelta(days=1), T0 + timedelta(days=1, minutes=15), {}),
    ]
    for pk, subject, start, end, extra in runs:
        s = _session(pk, exp, subject, ticket, start, end, **extra)
        _answer(s, consent, 1, "agree", question=agree, value="Agree")
        _answer(s, rate, 2, "rating", question=rating, value=pk % 7 + 1, minutes=1)
        if pk == 102:
            continue  # did not finish
        _answer(s, rate, 2, "rating", question=rating, value=(pk + 3) % 7 + 1, visit=2, minutes=2)
        for index, rt in ((0, 523.7), (1, 812.25)):
            trial = {
                "trial_type": "html-keyboard-response",
                "trial_index": index,
                "rt": rt,
                "stimulus": "red.png",
                "response": {"key": "f", "Q0": {"x": index}},
                "time_elapsed": 1000 * (index + 1),
            }
            _answer(s, task, 3, f"jspsych:{index}", jspsych=trial, trial_index=index, stimulus=red, minutes=3)
        _answer(s, survey, 4, "senses", question=senses, value=["sight", "hearing"], minutes=4)
    return exp


def build_group() -> Experiment:
    exp = Experiment.objects.create(slug="golden-group", title="Golden group", is_group=True, group_size=2)
    rating = _question(exp, "warmth", "How warm is the colour now?", "radiogroup", _fmt("enum", ["cold", "warm"]))
    trial = _form(exp, 1, "trial", "group_trial", [rating], repeat=2, goto=1)
    ticket = Ticket.objects.create(experiment=exp, code=POISON["group_ticket"], type=Ticket.Type.GROUP)
    gs = GroupSession.objects.create(
        id=501,
        experiment=exp,
        group=GroupFactory(name="lab-a"),
        ticket=ticket,
        participant_code=POISON["participant_code"],
        experimenter_code=POISON["experimenter_code"],
        phase="ended",
        step=2,
        expires=T0 + timedelta(hours=12),
        started=T0,
        ended=T0 + timedelta(minutes=10),
        context={"scores": {"cat": 1, "dan": 2}},
        shared_params={"color": "#00ff00"},
        notes="Poisonfirstname sat by the window",
    )
    GroupSession.objects.filter(pk=gs.pk).update(created=T0 - timedelta(minutes=5))
    steps = [
        (0, "start", {}),
        (1, "advance", {"color": "#ff0000", "trial": {"n": 1}}),
        (2, "advance", {"color": "#00ff00", "trial": {"n": 2}}),
        (2, "end", {}),
    ]
    for i, (step, action, shared) in enumerate(steps):
        at = T0 + timedelta(minutes=2 * i)
        StepLog.objects.create(
            group_session=gs, step=step, action=action, at=at, at_ms=int(at.timestamp() * 1000), shared_params=shared
        )
    for pk, name in ((201, "cat"), (202, "dan")):
        s = _session(pk, exp, _subject(name), ticket, T0, T0 + timedelta(minutes=10))
        Membership.objects.create(group_session=gs, session=s, pseudonym=f"P{pk}", status="finished")
        for step, _action, shared in steps[1:3]:
            _answer(
                s,
                trial,
                1,
                "warmth",
                visit=step,
                question=rating,
                value="warm" if pk == 201 else "cold",
                minutes=2 * step,
                group_session=gs,
                step=step,
                shared=shared,
            )
    return exp
