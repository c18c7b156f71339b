"""Definition files: validation with line numbers, atomic loading, upserts, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.definitions import (
    CREATED,
    UNCHANGED,
    UPDATED,
    DefinitionError,
    dump_experiment,
    load_file,
    load_text,
    loop_errors,
    validate_text,
)
from runner.models import DataFormat, Experiment, ExperimentXForm, Form, FormXQuestion, Question, Response
from tests.factories import ResponseFactory, SessionFactory
from tests.runner.definition_helpers import (
    BAD_FILES,
    DEMO_DIR,
    GOOD_DIR,
    expectations,
    missing_expectations,
    table_counts,
)

pytestmark = pytest.mark.django_db
PROBE = GOOD_DIR / "probe.yaml"
FULL = GOOD_DIR / "full.yaml"


@pytest.fixture
def probe():
    return load_file(path=PROBE).experiment


def test_there_are_many_distinct_bad_files():
    assert len(BAD_FILES) >= 12
    assert all(expectations(path) for path in BAD_FILES), "every bad file states what it expects"


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.stem)
def test_bad_file_is_refused_by_line_and_changes_nothing(path, probe):
    before, before_dump = table_counts(), dump_experiment(probe)
    with pytest.raises(DefinitionError) as info:
        load_file(path=path)
    assert info.value.issues, "an error must be reported"
    assert missing_expectations(path, info.value.lines()) == [], info.value.lines()
    assert table_counts() == before
    probe.refresh_from_db()
    assert dump_experiment(probe) == before_dump


def test_every_error_is_reported_not_just_the_first():
    text = """slug: Bad Slug
title: ''
color: blue
forms:
  - name: a
    handler: nope
    questions:
      - {key: q, text: Q, type: wheel}
      - {key: r, text: R, type: radiogroup}
  - name: b
    repeat: 0
    goto: zzz
"""
    definition, issues = validate_text(text)
    assert definition is None
    by_line = {issue.line for issue in issues}
    assert {1, 2, 3, 6, 8, 9, 11}.issubset(by_line), issues


def test_good_file_loads_forms_questions_and_loop(probe):
    assert probe.slug == "probe" and not probe.is_group
    links = list(probe.experiment_forms.order_by("order").select_related("form"))
    assert [(x.order, x.form.name, x.handler) for x in links] == [
        (1, "consent", "form_consent"),
        (2, "trial", "form_generic"),
        (3, "end", "form_end_session"),
    ]
    assert (links[1].repeat, links[1].goto) == (2, 2)
    assert all(link.form.owner_id == probe.pk for link in links)
    agree = Question.objects.get(owner=probe, key="agree")
    # YAML 1.1 reads a bare Yes as a boolean; choices are kept as written.
    assert agree.data_format.df_type == "enum" and agree.data_format.choices == ["Yes", "No"]
    rating = Question.objects.get(owner=probe, key="rating")
    assert rating.widget == "slider"
    assert (rating.data_format.df_type, rating.data_format.range) == ("int", {"min": 1, "max": 7, "step": 1})
    assert FormXQuestion.objects.get(question=rating).required is True


def test_full_file_round_trips():
    first = load_file(path=FULL)
    assert first.status == CREATED
    dump1 = dump_experiment(first.experiment)
    again = load_text(text=dump1)
    assert again.status == UNCHANGED and again.experiment.pk == first.experiment.pk
    # Into an empty database: the dump alone rebuilds the same experiment.
    ExperimentXForm.objects.filter(experiment=first.experiment).delete()  # links protect their forms
    first.experiment.delete()
    rebuilt = load_text(text=dump1)
    assert rebuilt.status == CREATED
    assert dump_experiment(rebuilt.experiment) == dump1


@pytest.mark.parametrize("path", [PROBE, FULL, DEMO_DIR / "solo.yaml", DEMO_DIR / "colors.yaml"], ids=lambda p: p.stem)
def test_dump_load_dump_is_identical(path):
    dump1 = dump_experiment(load_file(path=path).experiment)
    renamed = dump1.replace(f"slug: {validate_text(dump1)[0].slug}\n", "slug: round-trip-copy\n", 1)
    copy = load_text(text=renamed).experiment
    assert copy.slug == "round-trip-copy"
    assert dump_experiment(copy) == renamed


def test_full_file_details_survive():
    experiment = load_file(path=FULL).experiment
    assert experiment.is_group and experiment.group_size == 4 and experiment.group_flow == "demo.colors"
    assert experiment.params["nested"] == {"depth": 2, "ok": True}
    assert experiment.data_policy["jspsych"]["rt"] == {"round_to": 10}
    consent = Form.objects.get(owner=experiment, name="consent")
    assert consent.header == "<p>Please read.</p>\n<p>Then agree.</p>"
    agree = Question.objects.get(owner=experiment, key="agree")
    assert agree.data_format.choices == ["Yes", "No", "On", "1"]
    weight = Question.objects.get(owner=experiment, key="weight")
    assert weight.data_format.df_type == "float"
    # One question per key: the warmth slider is shared by two forms, required on one of them.
    warmth = Question.objects.get(owner=experiment, key="warmth")
    assert sorted(FormXQuestion.objects.filter(question=warmth).values_list("form__name", "required")) == [
        ("again", False),
        ("trial", True),
    ]
    again = ExperimentXForm.objects.get(experiment=experiment, form__name="again")
    assert (again.repeat, again.goto, again.break_loop_button_text) == (5, 3, "Enough")
    widths = dict(ExperimentXForm.objects.filter(experiment=experiment).values_list("form__name", "jspsych_width"))
    assert (widths["trial"], widths["feedback"], widths["again"]) == ("wide", "1000", "normal")
    dumped = dump_experiment(experiment)
    assert "jspsych_width: wide\n" in dumped and "jspsych_width: 1000\n" in dumped  # a number stays a number
    assert dumped.count("jspsych_width") == 2  # the default is left out


def test_reload_updates_in_place_and_keeps_responses(probe):
    trial_form = Form.objects.get(owner=probe, name="trial")
    rating = Question.objects.get(owner=probe, key="rating")
    session = SessionFactory(experiment=probe, end=probe.created)  # finished
    response = ResponseFactory(session=session, form=trial_form, question=rating, item="rating", value=5)
    changed = PROBE.read_text().replace("How much?", "How much really?").replace("repeat: 2", "repeat: 4")
    changed = changed.replace("  - name: end\n", "  - name: extra\n    handler: form_generic\n  - name: end\n")
    result = load_text(text=changed)
    assert result.status == UPDATED and result.experiment.pk == probe.pk
    assert Form.objects.get(owner=probe, name="trial").pk == trial_form.pk
    rating.refresh_from_db()
    assert rating.text == "How much really?"
    assert Response.objects.get(pk=response.pk).question_id == rating.pk
    names = list(probe.experiment_forms.order_by("order").values_list("form__name", flat=True))
    assert names == ["consent", "trial", "extra", "end"]


def test_dropped_forms_are_deleted_unless_answers_refer_to_them(probe):
    consent = Form.objects.get(owner=probe, name="consent")
    ResponseFactory(
        session=SessionFactory(experiment=probe, end=probe.created),
        form=consent,
        question=Question.objects.get(owner=probe, key="agree"),
        item="agree",
    )
    text = PROBE.read_text()
    without_consent = text[: text.index("  - name: consent")] + text[text.index("  - name: trial") :]
    without_consent = without_consent.replace("  - name: end\n    handler: form_end_session\n", "")
    load_text(text=without_consent)
    assert Form.objects.filter(pk=consent.pk).exists(), "answered form kept"
    assert not Form.objects.filter(owner=probe, name="end").exists(), "unanswered dropped form deleted"
    assert not ExperimentXForm.objects.filter(experiment=probe, form=consent).exists()


def test_unchanged_reload_writes_nothing(probe):
    link_ids = list(ExperimentXForm.objects.filter(experiment=probe).values_list("pk", flat=True))
    result = load_file(path=PROBE)
    assert result.status == UNCHANGED
    assert list(ExperimentXForm.objects.filter(experiment=probe).values_list("pk", flat=True)) == link_ids


def test_data_formats_are_reused_by_signature(probe):
    load_file(path=DEMO_DIR / "colors.yaml")
    agree_formats = set(Question.objects.filter(key="agree").values_list("data_format", flat=True))
    assert len(agree_formats) == 1 or DataFormat.objects.filter(choices=["I agree", "I do not agree"]).count() == 1
    slider_1_7 = DataFormat.make_signature("int", [], {"min": 1, "max": 7, "step": 1})
    assert DataFormat.objects.filter(signature=slider_1_7).count() == 1
    assert Question.objects.filter(data_format__signature=slider_1_7).count() == 2  # probe rating, colours warmth


def test_is_group_cannot_change_once_there_are_sessions(probe):
    SessionFactory(experiment=probe, end=probe.created)
    text = PROBE.read_text().replace("title: Probe\n", "title: Probe\nis_group: true\n")
    with pytest.raises(DefinitionError) as info:
        load_text(text=text, source="probe.yaml")
    assert any("is_group cannot change" in line and line.startswith("probe.yaml:4:") for line in info.value.lines())
    probe.refresh_from_db()
    assert probe.is_group is False


def test_is_group_may_change_before_any_session(probe):
    text = PROBE.read_text().replace("title: Probe\n", "title: Probe\nis_group: true\n")
    assert load_text(text=text).experiment.is_group is True


def test_create_only_refuses_an_existing_slug(probe):
    with pytest.raises(DefinitionError) as info:
        load_file(path=PROBE, create_only=True)
    assert "already exists" in str(info.value) and f"{PROBE}:2:" in str(info.value)


def test_structure_change_with_unfinished_sessions_needs_force(probe):
    SessionFactory(experiment=probe, end=None)
    text = PROBE.read_text().replace("repeat: 2", "repeat: 3")
    before = table_counts()
    with pytest.raises(DefinitionError) as info:
        load_text(text=text)
    assert "unfinished session" in str(info.value)
    assert table_counts() == before
    assert load_text(text=text, force=True).status == UPDATED
    # A wording change keeps the sequence and needs no force.
    assert load_text(text=text.replace("I agree.", "I do agree."), force=False).status == UPDATED


def test_a_failure_while_writing_rolls_everything_back(probe, monkeypatch):
    before, before_dump = table_counts(), dump_experiment(probe)

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ExperimentXForm.objects, "bulk_create", explode)
    with pytest.raises(RuntimeError):
        load_text(text=PROBE.read_text().replace("title: Probe", "title: Changed"))
    assert table_counts() == before
    probe.refresh_from_db()
    assert probe.title == "Probe" and dump_experiment(probe) == before_dump


def test_question_key_defined_differently_on_two_forms_is_refused():
    text = """slug: clash
title: Clash
forms:
  - name: a
    questions: [{key: x, text: One, type: text}]
  - name: b
    questions: [{key: x, text: Two, type: text}]
"""
    definition, issues = validate_text(text)
    assert definition is None
    assert [(i.line, "defined differently on line 5" in i.message) for i in issues] == [(7, True)]


def test_warnings_do_not_stop_a_load():
    text = PROBE.read_text().replace(
        "    handler: form_consent\n", "    handler: form_consent\n    break_loop_button: true\n"
    )
    result = load_text(text=text, source="w.yaml")
    assert [w.line for w in result.warnings] == [7]
    assert "break_loop_button only shows" in result.warnings[0].format("w.yaml")


def test_anchors_and_merge_keys_work():
    text = """slug: anchors
title: Anchors
forms:
  - &rated
    name: first
    questions:
      - &rating {key: rating, text: Rate it, type: slider, range: {min: 0, max: 10}}
  - <<: *rated
    name: second
"""
    definition, issues = validate_text(text)
    assert issues == [] and [f.name for f in definition.forms] == ["first", "second"]
    assert definition.forms[1].questions[0].range == {"min": 0, "max": 10}


def test_goto_by_number_and_single_form_loop():
    text = "slug: n\ntitle: N\nforms:\n  - name: a\n  - name: b\n    repeat: 2\n    goto: 1\n"
    definition, issues = validate_text(text + "  - name: c\n    repeat: 3\n    goto: c\n")
    assert issues == []
    assert [(f.repeat, f.goto) for f in definition.forms] == [(None, None), (2, 1), (3, 3)]


def test_data_policy_is_checked_by_runner_policy(monkeypatch):
    text = "slug: p\ntitle: P\ndata_policy: {default: shred}\nforms: [{name: a}]\n"
    _, issues = validate_text(text)
    assert [(i.line, i.warning) for i in issues] == [(3, False)]
    # A checker that breaks refuses the policy instead of letting it through unchecked.
    from runner import policy

    monkeypatch.setattr(policy, "policy_errors", lambda _: 1 / 0)
    definition, issues = validate_text(text)
    assert [(i.line, i.warning) for i in issues] == [(3, False)]
    assert "could not be checked: ZeroDivisionError" in issues[0].message


def test_loop_errors_is_pure_and_allows_loops_in_a_row():
    assert loop_errors([(1, 2), (3, 5), (6, 6)]) == []
    assert [end for end, _ in loop_errors([(1, 4), (2, 3)])] == [4]
    assert [end for end, _ in loop_errors([(1, 3), (3, 5)])] == [5]


def test_unreadable_file_is_a_definition_error(tmp_path: Path):
    with pytest.raises(DefinitionError) as info:
        load_file(path=tmp_path / "missing.yaml")
    assert "cannot read the file" in str(info.value)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DefinitionError):
        load_file(path=binary)
    assert not Experiment.objects.exists()


def test_flow_control_is_stored_where_the_runtime_reads_it():
    """Issue 20: a group_trial's timer and auto-advance sit on its form link, the
    dropout policy and lobby on the experiment; defaults are left out."""
    experiment = load_file(path=FULL).experiment
    link = experiment.experiment_forms.get(form__name="trial")
    assert link.flow == {
        "timeout_seconds": 30,
        "on_timeout": "skip",
        "auto_advance": "all_responded",
        "auto_advance_delay_seconds": 1.5,
    }
    assert experiment.dropout == {"after_seconds": 45, "policy": "bot"}
    assert experiment.lobby["min_size"] == 4 and experiment.lobby["release_completion_code"] == "C1A2B3"
    assert all(link.flow == {} for link in experiment.experiment_forms.exclude(form__name="trial"))


def test_flow_control_only_for_group_experiments():
    text = (
        "slug: solo-flow\ntitle: T\ndropout: {after_seconds: 30}\nlobby: {min_size: 2, wait_seconds: 60}\n"
        "forms:\n  - name: a\n    auto_advance: all_responded\n"
    )
    _definition, issues = validate_text(text)
    messages = [(i.line, i.message) for i in issues]
    assert (3, "dropout is only for group experiments (set is_group: true)") in messages
    assert (4, "lobby is only for group experiments (set is_group: true)") in messages
    assert (7, "form 'a': auto_advance is only for group_trial forms") in messages


def test_explicit_defaults_load_like_no_flow_control():
    text = (
        "slug: flow-defaults\ntitle: T\nis_group: true\ndropout: {after_seconds: 30, policy: continue}\n"
        "forms:\n  - name: a\n    handler: group_trial\n    timeout_seconds: 5\n    on_timeout: submit\n"
        "    auto_advance: experimenter\n"
    )
    experiment = load_text(text=text).experiment
    assert experiment.experiment_forms.get().flow == {"timeout_seconds": 5}
    assert experiment.dropout == {"after_seconds": 30}
    assert load_text(text=dump_experiment(experiment)).status == UNCHANGED
