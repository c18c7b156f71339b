"""runner.policy: validation, each transform, each refusal, the consent summary."""

from __future__ import annotations

from datetime import date

import pytest
from django.test import override_settings

from runner.policy import (
    InvalidPolicy,
    PolicyViolation,
    hash_value,
    policy_errors,
    sanitize_jspsych,
    sanitize_subject_fields,
    store_forbidden_check,
)
from runner.policy_text import plain_language_summary
from tests.factories import ExperimentFactory

EXAMPLE = {
    "default": "keep",
    "subject": {"dob": "year_only", "email": "drop", "name_first": "hash"},
    "jspsych": {"rt": {"round_to": 10}, "ip_address": "drop", "birth_date": "age_in_years"},
}
TODAY = date(2026, 11, 23)


def exp(policy):
    return ExperimentFactory.build(slug="policy-test", data_policy=policy)


# ----------------------------------------------------------------- validation


def test_example_policy_is_valid_and_empty_policy_is_valid():
    assert policy_errors(EXAMPLE) == []
    assert policy_errors({}) == []
    assert policy_errors(None) == []


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        ({"jspsych": {"rt": "blur"}}, "data_policy.jspsych.rt: unknown transform 'blur'"),
        ({"subject": {"shoe_size": "keep"}}, "data_policy.subject.shoe_size: unknown subject field"),
        ({"subject": {"email": "year_only"}}, "data_policy.subject.email: transform 'year_only' cannot be used"),
        ({"subject": {"dob": {"round_to": 5}}}, "data_policy.subject.dob: round_to cannot be used here"),
        ({"subject": {"dob": "hash"}}, "data_policy.subject.dob: transform 'hash' cannot be used here"),
        ({"jspsych": {"rt": {"round_to": 0}}}, "round_to needs a positive number, got 0"),
        ({"jspsych": {"rt": {"round_to": -5}}}, "round_to needs a positive number"),
        ({"jspsych": {"rt": {"round_to": "ten"}}}, "round_to needs a positive number, got 'ten'"),
        ({"jspsych": {"rt": {"round_to": True}}}, "round_to needs a positive number"),
        ({"jspsych": {"rt": {"round_to": 10, "x": 1}}}, "must be exactly {round_to: N}"),
        ({"jspsych": {"rt": 10}}, "a transform is a name or {round_to: N}, got int"),
        ({"default": "year_only"}, "data_policy.default: transform 'year_only' cannot be used here"),
        ({"default": {"round_to": 10}}, "data_policy.default: round_to cannot be used here"),
        ({"retention": "30d"}, "unknown section 'retention'"),
        ({"subject": ["email"]}, "data_policy.subject must be a mapping"),
        ({"jspsych": "drop"}, "data_policy.jspsych must be a mapping"),
        (["keep"], "data_policy must be a mapping"),
    ],
)
def test_policy_errors_name_the_problem(policy, fragment):
    errors = policy_errors(policy)
    assert any(fragment in e for e in errors), errors


def test_every_error_is_listed():
    errors = policy_errors({"subject": {"x": "keep", "email": "blur"}, "jspsych": {"rt": {"round_to": 0}}})
    assert len(errors) == 3


def test_sanitizers_refuse_an_invalid_policy():
    with pytest.raises(InvalidPolicy) as info:
        sanitize_jspsych(exp({"jspsych": {"rt": "blur"}}), [{"rt": 1}])
    assert "unknown transform 'blur'" in str(info.value)


# ----------------------------------------------------------------- jsPsych transforms


def test_keep_is_the_default_for_unknown_keys():
    trials = [{"rt": 523.7, "stimulus": "<p>x</p>", "response": {"Q0": "a"}}]
    assert sanitize_jspsych(exp({}), trials) == trials


def test_default_drop_drops_unknown_keys_but_named_keys_follow_their_transform():
    policy = {"default": "drop", "jspsych": {"rt": "keep"}}
    assert sanitize_jspsych(exp(policy), [{"rt": 500, "stimulus": "x", "ip_address": "1.2.3.4"}]) == [{"rt": 500}]


def test_default_hash_hashes_unknown_keys():
    with override_settings(PSEUDONYM_KEY="k"):
        out = sanitize_jspsych(exp({"default": "hash"}), [{"who": "Ann"}])
        assert out == [{"who": hash_value("Ann")}]


def test_drop_removes_the_key():
    assert sanitize_jspsych(exp(EXAMPLE), [{"ip_address": "10.0.0.1", "rt": None}]) == [{"rt": None}]


@override_settings(PSEUDONYM_KEY="fixed-key")
def test_hash_is_keyed_hex_and_stable():
    out = sanitize_jspsych(exp({"jspsych": {"worker": "hash"}}), [{"worker": "A1"}, {"worker": "A1"}])
    assert out[0]["worker"] == out[1]["worker"]
    assert len(out[0]["worker"]) == 64 and int(out[0]["worker"], 16) >= 0
    assert out[0]["worker"] != "A1"
    with override_settings(PSEUDONYM_KEY="other-key"):
        assert hash_value("A1") != out[0]["worker"]
    assert hash_value(None) is None
    assert hash_value({"b": 1, "a": 2}) == hash_value({"a": 2, "b": 1})


def test_round_to():
    policy = exp({"jspsych": {"rt": {"round_to": 10}, "x": {"round_to": 0.5}, "arr": {"round_to": 100}}})
    out = sanitize_jspsych(policy, [{"rt": 523.7, "x": 1.3, "arr": [149, 151, "260", "n/a"]}])
    assert out == [{"rt": 520, "x": 1.5, "arr": [100, 200, 300, None]}]
    assert sanitize_jspsych(policy, [{"rt": None}, {"rt": "fast"}, {"rt": True}]) == [
        {"rt": None},
        {"rt": None},
        {"rt": None},
    ]


def test_round_to_reaches_into_nested_values():
    out = sanitize_jspsych(exp({"jspsych": {"times": {"round_to": 10}}}), [{"times": {"a": 14, "b": [16]}}])
    assert out == [{"times": {"a": 10, "b": [20]}}]


def test_year_only_and_age_in_years():
    policy = exp({"jspsych": {"birth_date": "age_in_years", "wedding": "year_only"}})
    out = sanitize_jspsych(policy, [{"birth_date": "2000-11-24", "wedding": "2019-06-01"}], today=TODAY)
    assert out == [{"birth_date": 25, "wedding": 2019}]
    out = sanitize_jspsych(policy, [{"birth_date": "2000-11-23T10:00:00Z", "wedding": "soon"}], today=TODAY)
    assert out == [{"birth_date": 26, "wedding": None}]


def test_nested_keys_follow_the_top_level_key():
    trials = [{"response": {"ip_address": "1.2.3.4"}, "ip_address": "5.6.7.8"}]
    assert sanitize_jspsych(exp(EXAMPLE), trials) == [{"response": {"ip_address": "1.2.3.4"}}]
    assert sanitize_jspsych(exp({"jspsych": {"response": "drop"}}), trials) == [{"ip_address": "5.6.7.8"}]


def test_input_is_not_modified_and_non_objects_are_refused():
    trials = [{"ip_address": "1.2.3.4"}]
    sanitize_jspsych(exp(EXAMPLE), trials)
    assert trials == [{"ip_address": "1.2.3.4"}]
    with pytest.raises(PolicyViolation) as info:
        sanitize_jspsych(exp(EXAMPLE), ["not a trial"])
    assert info.value.field == "trial[0]"


# ----------------------------------------------------------------- subject fields


@override_settings(PSEUDONYM_KEY="fixed-key")
def test_subject_fields_under_the_example_policy():
    fields = {"dob": date(1990, 7, 14), "email": "ann@example.org", "name_first": "Ann", "name_last": "Lee"}
    out = sanitize_subject_fields(exp(EXAMPLE), fields)
    assert out == {"dob": date(1990, 1, 1), "name_first": hash_value("Ann"), "name_last": "Lee"}


def test_subject_dob_age_in_years_goes_to_age():
    out = sanitize_subject_fields(exp({"subject": {"dob": "age_in_years"}}), {"dob": "2000-11-24"}, today=TODAY)
    assert out == {"age": 25}


def test_subject_fields_without_policy_are_kept():
    fields = {"email": "a@b.c", "phone": "123"}
    assert sanitize_subject_fields(exp({}), fields) == fields


def test_subject_unknown_field_is_refused():
    with pytest.raises(PolicyViolation) as info:
        sanitize_subject_fields(exp({}), {"shoe_size": 44})
    assert info.value.field == "shoe_size"


# ----------------------------------------------------------------- explicit store refusals


def test_store_forbidden_check_refuses_dropped_fields_naming_them():
    with pytest.raises(PolicyViolation) as info:
        store_forbidden_check(exp(EXAMPLE), "subject", "email")
    assert info.value.field == "email"
    assert "email" in str(info.value) and "policy-test" in str(info.value)
    with pytest.raises(PolicyViolation) as info:
        store_forbidden_check(exp(EXAMPLE), "jspsych", "ip_address")
    assert info.value.field == "ip_address"
    with pytest.raises(PolicyViolation) as info:
        store_forbidden_check(exp({"default": "drop"}), "jspsych", "anything")
    assert info.value.field == "anything"
    with pytest.raises(PolicyViolation) as info:
        store_forbidden_check(exp({}), "subject", "password")
    assert info.value.field == "password"


def test_store_forbidden_check_allows_and_returns_the_transform():
    assert store_forbidden_check(exp(EXAMPLE), "subject", "dob").name == "year_only"
    assert store_forbidden_check(exp(EXAMPLE), "jspsych", "rt").round_to == 10
    assert store_forbidden_check(exp(EXAMPLE), "jspsych", "stimulus").name == "keep"
    with pytest.raises(ValueError):
        store_forbidden_check(exp(EXAMPLE), "session", "x")


# ----------------------------------------------------------------- consent summary


def test_plain_language_summary_of_the_example():
    sentences = plain_language_summary(EXAMPLE)
    assert "We store the year of your birth, not the full date." in sentences
    assert "Your email address is not stored." in sentences
    assert "Response times are rounded to 10 ms." in sentences
    assert "Your IP address is not stored." in sentences
    assert "We store your age in whole years, not your date of birth." in sentences
    assert any("scrambled code made from your first name" in s for s in sentences)


def test_plain_language_summary_of_default_drop_and_empty():
    assert "Other data recorded by the tasks are not stored unless listed here." in plain_language_summary(
        {"default": "drop"}
    )
    assert plain_language_summary({})[-1].startswith("Personal details you enter are stored encrypted")
    with pytest.raises(InvalidPolicy):
        plain_language_summary({"jspsych": {"rt": "blur"}})
