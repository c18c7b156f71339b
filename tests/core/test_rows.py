"""project.core.rows.Select: hand-written SELECTs that must load exactly what the ORM's
``select_related`` loads (values after converters, related caches, instance state)."""

import threading
from datetime import UTC, datetime

import pytest
from django.db import DatabaseError, OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext

from project.core.rows import Select
from runner import selectors
from runner.models import Experiment, ExperimentXForm, FormXQuestion, Session
from runner.run_cookie import cookie_name, session_from_cookies
from runner.services import _lock_session
from tests.factories import DataFormatFactory, ExperimentFactory, FormXQuestionFactory, SessionFactory
from tests.runner.builders import build_experiment

pytestmark = pytest.mark.django_db

BY_PK = 't0."id" = %s'


def values(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


@pytest.fixture
def session():
    """A run whose columns need converters: JSON (nested, unicode), aware datetimes, floats."""
    experiment = ExperimentFactory(
        params={"n": 3, "names": ["Ä", "b"]},
        data_policy={"keep": True},
        start_date=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    )
    return SessionFactory(
        experiment=experiment,
        state={"current": {"order": 2, "nonce": "x"}, "loops": {"3": 1}},
        end=datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        clock_offset_ms=-12.5,
        age=31,
    )


def test_get_loads_the_row_and_its_experiment_as_the_orm_does(session):
    """Every concrete value (after database converters) of the run and its experiment equals
    the ORM's; the experiment is cached, and the instance is a saved row of "default"."""
    orm = Session.objects.select_related("experiment").get(pk=session.pk)
    with CaptureQueriesContext(connection) as queries:
        got = Select(Session, related=("experiment",), where=BY_PK).get(session.pk)
        experiment = got.experiment
    assert len(queries) == 1
    assert values(got) == values(orm)
    assert values(experiment) == values(orm.experiment)
    assert got.state["current"] == {"order": 2, "nonce": "x"} and experiment.params["names"] == ["Ä", "b"]
    assert got.end == session.end and got.end.tzinfo is not None
    assert got._state.adding is False and got._state.db == "default"
    assert experiment._state.adding is False and experiment._state.db == "default"


def test_nested_related_paths_load_form_questions_in_order():
    """``question__data_format`` follows two keys; rows come in the where's ORDER BY, not
    insertion order, and walking fxq.question.data_format costs no query."""
    formats = [
        DataFormatFactory(df_type="int", choices=[], range={"min": 1, "max": 7}),
        DataFormatFactory(df_type="enum", choices=["Ja", "Nein"]),
        DataFormatFactory(df_type="text", choices=[]),
    ]
    first = FormXQuestionFactory(order=3, question__data_format=formats[0])
    for order, fmt in ((1, formats[1]), (2, formats[2])):
        FormXQuestionFactory(form=first.form, order=order, question__data_format=fmt)
    FormXQuestionFactory(order=1)  # another form's row, not to be read
    orm = list(FormXQuestion.objects.filter(form=first.form).select_related("question__data_format").order_by("order"))
    sel = Select(
        FormXQuestion, related=("question", "question__data_format"), where='t0."form_id" = %s ORDER BY t0."order"'
    )
    for got in (sel.all(first.form.pk), selectors.form_questions(first.form)):
        with CaptureQueriesContext(connection) as queries:
            walked = [(values(f), values(f.question), values(f.question.data_format)) for f in got]
        assert len(queries) == 0
        assert [f.order for f in got] == [1, 2, 3]
        assert walked == [(values(f), values(f.question), values(f.question.data_format)) for f in orm]


def test_positions_match_the_orm():
    """runner.selectors.positions: the experiment's forms in order, each with its form cached."""
    experiment = build_experiment([{"name": "a"}, {"name": "b", "repeat": 2, "goto": 1}, {"name": "c"}])
    orm = list(ExperimentXForm.objects.filter(experiment=experiment).select_related("form").order_by("order"))
    got = selectors.positions(experiment)
    with CaptureQueriesContext(connection) as queries:
        walked = [(values(p), values(p.form)) for p in got]
    assert len(queries) == 0
    assert walked == [(values(p), values(p.form)) for p in orm]


def test_missing_rows():
    """No row: ``get`` raises the model's own DoesNotExist (callers catch that), ``first``
    is None and ``all`` is empty."""
    sel = Select(Session, related=("experiment",), where=BY_PK)
    with pytest.raises(Session.DoesNotExist, match="Session matching query does not exist"):
        sel.get(987654)
    assert sel.first(987654) is None
    assert sel.all(987654) == []


def test_an_instance_saves_as_an_update_and_the_statement_is_built_once(session):
    """A loaded instance is a saved row: save() updates it (no second row), and the SQL is
    compiled at the first call only."""
    sel = Select(Session, related=("experiment",), where=BY_PK)
    got = sel.get(session.pk)
    compiled = sel._compiled
    got.state = {**got.state, "extra": [1, 2]}
    got.timezone = "Europe/Berlin"
    with CaptureQueriesContext(connection) as queries:
        got.save()
    assert [q["sql"].split()[0] for q in queries] == ["UPDATE"]
    assert Session.objects.count() == 1
    again = sel.get(session.pk)
    assert sel._compiled is compiled
    assert again.state["extra"] == [1, 2] and again.timezone == "Europe/Berlin"
    assert values(again) == values(Session.objects.get(pk=session.pk))


def test_lock_session_runs_on_every_backend(session):
    """The lock clause goes after ``where`` only where the database has row locks: SQLite
    (no FOR UPDATE; its write transaction locks the database) must still read the run."""
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        locked = _lock_session(session.pk)
    assert values(locked) == values(Session.objects.get(pk=session.pk))
    [sql] = [q["sql"] for q in queries if q["sql"].startswith("SELECT")]
    assert sql.endswith(" FOR UPDATE OF t0") is connection.features.has_select_for_update


def nowait(model, pk: int) -> Exception | None:
    """From another thread (its own connection), try to lock ``model``'s row without
    waiting (tests/runner/test_concurrency.py's threads); the error, or None when free."""
    outcome = []

    def run():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f'SELECT "id" FROM "{model._meta.db_table}" WHERE "id" = %s FOR UPDATE NOWAIT', [pk])
            outcome.append(None)
        except DatabaseError as exc:
            outcome.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert outcome, "the locking thread did not finish"
    return outcome[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_lock_session_locks_the_run_row_only():
    """Inside a transaction _lock_session holds the Session row (another connection's NOWAIT
    fails) but not its experiment's (``OF t0``); before and after, the row is free."""
    session = SessionFactory()
    assert nowait(Session, session.pk) is None
    with transaction.atomic():
        locked = _lock_session(session.pk)
        assert locked.pk == session.pk and "experiment" in locked._state.fields_cache
        refused = nowait(Session, session.pk)
        assert isinstance(refused, OperationalError)
        assert refused.__cause__.sqlstate == "55P03"  # lock_not_available
        assert nowait(Experiment, session.experiment_id) is None
    assert nowait(Session, session.pk) is None


def test_session_from_cookies(session):
    """A valid cookie gives the ORM's session with its experiment cached; a missing cookie,
    an unknown token or another experiment's cookie give None."""
    eid = session.experiment_id
    orm = Session.objects.select_related("experiment").get(run_token=session.run_token, experiment_id=eid)
    got = session_from_cookies({cookie_name(eid): session.run_token}, eid)
    with CaptureQueriesContext(connection) as queries:
        assert values(got.experiment) == values(orm.experiment)
    assert len(queries) == 0
    assert values(got) == values(orm)
    assert session_from_cookies({}, eid) is None
    assert session_from_cookies({cookie_name(eid): "not-a-token"}, eid) is None
    other = ExperimentFactory()
    assert session_from_cookies({cookie_name(other.pk): session.run_token}, other.pk) is None


def test_save_fields_writes_many_rows_in_one_statement_as_save_would():
    """project.core.rows.save_fields: JSON (nested, unicode, quotes), aware datetimes and
    None, text and floats round-trip exactly; other columns and other rows are untouched."""
    from project.core.rows import save_fields

    runs = SessionFactory.create_batch(3, timezone="UTC", user_agent="kept")
    untouched = SessionFactory(timezone="Asia/Tokyo")
    when = datetime(2026, 12, 1, 23, 59, 58, 123456, tzinfo=UTC)
    wanted = [
        {"state": {"a": [1, {"b": "ü \"quoted\" ✓"}], "n": None}, "end": when, "timezone": "Europe/Berlin",
         "clock_offset_ms": -12.5, "current_order": 3},
        {"state": {}, "end": None, "timezone": "", "clock_offset_ms": None, "current_order": 1},
        {"state": {"x": 1.25}, "end": when, "timezone": "America/New_York", "clock_offset_ms": 0.0,
         "current_order": 2},
    ]  # fmt: skip
    for run, fields in zip(runs, wanted, strict=True):
        for name, value in fields.items():
            setattr(run, name, value)
    with CaptureQueriesContext(connection) as queries:
        changed = save_fields(runs, list(wanted[0]))
    assert changed == 3
    assert len([q for q in queries.captured_queries if q["sql"].startswith(("UPDATE", "WITH"))]) == 1
    for run, fields in zip(runs, wanted, strict=True):
        fresh = Session.objects.get(pk=run.pk)
        assert {name: getattr(fresh, name) for name in fields} == fields
        assert fresh.user_agent == "kept"
    assert Session.objects.get(pk=untouched.pk).timezone == "Asia/Tokyo"
    assert save_fields([], ["state"]) == 0


def test_statements_sent_together_give_each_its_own_rows(session):
    """project.core.rows.pipelined + Select.send: results read in any order, each its own
    (PostgreSQL's pipeline mode; elsewhere the statements simply run one by one)."""
    from project.core.rows import pipelined

    other = SessionFactory()
    select = Select(Session, related=("experiment",), where=BY_PK)
    with transaction.atomic(), pipelined():
        first, second = select.send(session.pk), select.send(other.pk)
        assert [s.pk for s in second()] == [other.pk]
        assert values(first()[0]) == values(Session.objects.get(pk=session.pk))


@pytest.mark.postgres
def test_a_prepared_select_is_prepared_at_its_first_use_and_logged_with_its_sql(session):
    """``Select(prepare=True)`` on PostgreSQL: the server plans it once per connection from
    its first execution on (``prepare_threshold`` 0: with 5, a pool of 20 connections
    planned the live page's reload read for its first 100 uses), and the debug log shows
    its SQL (Django's logs a prepared statement's text as None)."""
    by_pk = Select(Session, related=("experiment",), where=BY_PK + ' AND t0."age" = %s', prepare=True)
    with CaptureQueriesContext(connection) as queries:
        found = by_pk.first(session.pk, 31)
    assert found.pk == session.pk and found.experiment.pk == session.experiment_id
    assert [q["sql"] for q in queries.captured_queries] == [by_pk._compile()[0]]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ['%t0."age" = $2%'])
        assert cursor.fetchone()[0] == 1
    assert by_pk.first(session.pk, 30) is None  # the prepared statement with other values
