"""The seven widget types: server-side validation and client-side HTML attributes."""

import pytest

from runner.forms import QuestionsForm
from runner.models import Response
from tests.factories import FormXQuestionFactory, QuestionFactory

from .builders import build_experiment, data_format, start, submit

pytestmark = pytest.mark.django_db


def _form(widget, df_type="enum", choices=None, range_=None, required=True, data=None):
    question = QuestionFactory(key="a", widget=widget, data_format=data_format(df_type, choices, range_))
    fxq = FormXQuestionFactory(question=question, required=required)
    return QuestionsForm(data, form_questions=[fxq])


@pytest.mark.parametrize(
    "widget, df_type, choices, range_, good, bad",
    [
        ("radiogroup", "enum", ["Red", "Blue"], None, "Blue", "Green"),
        ("menu", "enum", ["Red", "Blue"], None, "Red", "Purple"),
        ("text", "string", None, None, "hello", "x" * 501),
        ("textarea", "text", None, None, "long\nanswer", "y" * 10_001),
        ("numeric", "int", None, {"min": 0, "max": 120}, "42", "121"),
        ("numeric", "float", None, {"min": 0.5, "max": 2.5}, "1.25", "abc"),
        ("slider", "int", None, {"min": 1, "max": 7, "step": 1}, "7", "8"),
        ("slider", "float", None, {"min": 0, "max": 1, "step": 0.25}, "0.75", "0.3"),
    ],
)
def test_single_value_widgets_validate_server_side(widget, df_type, choices, range_, good, bad):
    assert _form(widget, df_type, choices, range_, data={"q-a": good}).is_valid()
    bad_form = _form(widget, df_type, choices, range_, data={"q-a": bad})
    assert not bad_form.is_valid() and "a" in bad_form.errors
    required = _form(widget, df_type, choices, range_, data={})
    assert not required.is_valid() and "required" in str(required.errors["a"])
    assert _form(widget, df_type, choices, range_, required=False, data={}).is_valid()


def test_checkbox_needs_at_least_one_known_choice():
    assert _form("checkbox", choices=["A", "B", "C"], data={"q-a": ["A", "C"]}).is_valid()
    assert not _form("checkbox", choices=["A", "B"], data={"q-a": ["Z"]}).is_valid()
    empty = _form("checkbox", choices=["A", "B"], data={})
    assert not empty.is_valid() and "at least one" in str(empty.errors["a"])
    form = _form("checkbox", choices=["A", "B", "C"], data={"q-a": ["A", "C"]})
    form.is_valid()
    assert form.cleaned_answers() == {"a": ["A", "C"]}


def test_numbers_are_stored_as_numbers():
    form = _form("slider", "float", range_={"min": 0, "max": 1, "step": 0.25}, data={"q-a": "0.5"})
    assert form.is_valid() and form.cleaned_answers() == {"a": 0.5}
    form = _form("numeric", "int", range_={"min": 0, "max": 9}, data={"q-a": "3"})
    assert form.is_valid() and form.cleaned_answers() == {"a": 3}


@pytest.mark.parametrize(
    "widget, df_type, choices, range_, expected",
    [
        ("radiogroup", "enum", ["R", "B"], None, ['type="radio"', "required"]),
        ("menu", "enum", ["R", "B"], None, ["<select", "required", '<option value="" selected>Choose']),
        ("text", "string", None, None, ['type="text"', 'maxlength="500"', "required"]),
        ("textarea", "text", None, None, ["<textarea", 'maxlength="10000"', "required"]),
        ("numeric", "int", None, {"min": 0, "max": 120}, ['type="number"', 'min="0"', 'max="120"', "required"]),
        ("slider", "int", None, {"min": 1, "max": 7, "step": 1}, ['type="range"', 'min="1"', 'max="7"', 'step="1"']),
        ("checkbox", "enum", ["A", "B"], None, ['type="checkbox"']),
    ],
)
def test_widgets_carry_client_side_validation_attributes(widget, df_type, choices, range_, expected):
    html = str(_form(widget, df_type, choices, range_)["a"])
    for fragment in expected:
        assert fragment in html, (fragment, html)


def test_every_widget_through_the_run_page(client):
    experiment = build_experiment(
        [
            {
                "name": "survey",
                "questions": [
                    {"key": "colour", "widget": "radiogroup", "choices": ["Red", "Blue"]},
                    {"key": "fruits", "widget": "checkbox", "choices": ["Apple", "Pear", "Plum"]},
                    {"key": "country", "widget": "menu", "choices": ["DE", "FR"]},
                    {"key": "nick", "widget": "text", "df_type": "string"},
                    {"key": "story", "widget": "textarea", "df_type": "text", "required": False},
                    {"key": "age", "widget": "numeric", "df_type": "int", "range": {"min": 18, "max": 99}},
                    {"key": "mood", "widget": "slider", "df_type": "int", "range": {"min": 1, "max": 7, "step": 1}},
                ],
            }
        ]
    )
    session = start(client, experiment)
    page = client.get(f"/run/{experiment.pk}/").content.decode()
    for key in ("colour", "fruits", "country", "nick", "story", "age", "mood"):
        assert f'data-question="{key}"' in page
    bad = submit(
        client, session, {"colour": "Green", "fruits": [], "country": "", "nick": "", "age": "12", "mood": "9"}
    )
    assert bad.status_code == 200 and not Response.objects.exists()
    errors = bad.context["form"].errors
    assert set(errors) == {"colour", "fruits", "country", "nick", "age", "mood"}
    submit(
        client,
        session,
        {
            "colour": "Blue",
            "fruits": ["Apple", "Plum"],
            "country": "FR",
            "nick": "Kim",
            "story": "",
            "age": "30",
            "mood": "5",
        },
    )
    values = dict(Response.objects.values_list("item", "value"))
    assert values == {
        "colour": "Blue",
        "fruits": ["Apple", "Plum"],
        "country": "FR",
        "nick": "Kim",
        "story": None,
        "age": 30,
        "mood": 5,
    }


# ---- sliders count only once moved; textareas count as the browser counts ---------------
SEVEN = {"min": 1, "max": 7, "step": 1}


def _posted(**fields):
    """Data as a browser posts it (a QueryDict: repeated names, immutable)."""
    from django.http import QueryDict

    data = QueryDict(mutable=True)
    for name, value in fields.items():
        data.setlist(name, value if isinstance(value, list) else [value])
    data._mutable = False
    return data


def test_untouched_optional_slider_stores_nothing():
    # The browser posts the midpoint of a range input it never moved, with the page's marker.
    form = _form("slider", "int", range_=SEVEN, required=False, data=_posted(**{"q-a": "4", "_untouched": "q-a"}))
    assert form.is_valid(), form.errors
    assert form.cleaned_answers() == {"a": None}


def test_untouched_required_slider_is_refused():
    form = _form("slider", "int", range_=SEVEN, data=_posted(**{"q-a": "4", "_untouched": "q-a"}))
    assert not form.is_valid()
    assert str(form.errors["a"][0]) == "An answer is required: please move the slider."


def test_moved_slider_stores_what_was_set():
    form = _form("slider", "int", range_=SEVEN, data=_posted(**{"q-a": "4"}))
    assert form.is_valid() and form.cleaned_answers() == {"a": 4}


def test_untouched_marker_drops_only_sliders():
    form = _form("numeric", "int", range_=SEVEN, data=_posted(**{"q-a": "4", "_untouched": "q-a"}))
    assert form.is_valid() and form.cleaned_answers() == {"a": 4}


def test_slider_page_marks_it_untouched_until_it_has_a_value():
    from django.template.loader import render_to_string

    fresh = _form("slider", "int", range_=SEVEN)
    html = render_to_string("runner/includes/question.html", {"field": fresh["a"]})
    assert 'name="_untouched" value="q-a"' in html and "not set" in html
    moved = _form("slider", "int", range_=SEVEN, data=_posted(**{"q-a": "6"}))
    html = render_to_string("runner/includes/question.html", {"field": moved["a"]})
    assert "_untouched" not in html and ">6</output>" in html


def test_textarea_counts_line_breaks_as_the_browser_does():
    # 100 lines of 99 characters and a last "z": 10,000 characters in the browser's count
    # (maxlength), 10,099 on the wire, where each of the 99 line breaks is CRLF.
    posted = "\r\n".join(["x" * 99] * 100) + "z"
    assert len(posted) == 10_099 and len(posted.replace("\r\n", "\n")) == 10_000
    form = _form("textarea", "text", data=_posted(**{"q-a": posted}))
    assert form.is_valid(), form.errors
    assert form.cleaned_answers()["a"] == posted.replace("\r\n", "\n")
    over = _form("textarea", "text", data=_posted(**{"q-a": posted + "y"}))
    assert not over.is_valid()
