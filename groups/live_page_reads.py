"""The statements a reload of the live page reads with (``groups.live_page``): on PostgreSQL
one (``GLANCE``: the run, its membership and group session, the positions ``_visit``
looks at, fingerprints of the definition) and, to render a shell, two more (``FULL_*``:
the rows, each with the fingerprint of exactly the rows it returns); on SQLite the run
(``RUN``) and the current form's questions (``CURRENT_QUESTIONS``)."""

from __future__ import annotations

import hashlib

from project.core.rows import Select
from runner.models import ExperimentXForm, FormXQuestion

from .models import Membership

RUN = Select(
    Membership,
    related=("session", "session__experiment", "group_session"),
    where='t1."run_token" = %s AND t1."experiment_id" = %s',
)
# The questions of the form at the run's current order (``Session.current_order``, kept
# with ``state["current"]``), sent with the run's read: checked against its position in
# ``_render_shell`` (the run may have moved on between two statements).
CURRENT_QUESTIONS_OF = (
    '(SELECT x."form_id" FROM "runner_experimentxform" x INNER JOIN "runner_session" s'
    ' ON x."experiment_id" = s."experiment_id" AND x."order" = s."current_order"'
    ' WHERE s."run_token" = %s AND s."experiment_id" = %s)'
)
CURRENT_QUESTIONS = Select(
    FormXQuestion,
    related=("question", "question__data_format"),
    where=f't0."form_id" = {CURRENT_QUESTIONS_OF} ORDER BY t0."order"',
)
# PostgreSQL: the definition's rows as md5 fingerprints, the same text whether aggregated
# in a subquery (``GLANCE``, nothing else read) or over the rows read (``FULL_*``, a
# window over them: the fingerprint of exactly the rows the shell is rendered from).
_FORMS_ROW, _QUESTIONS_ROW = "ROW(x.*, f.*)::text", "ROW(q.*, qq.*, d.*)::text"
_ALL = "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING"
_AT = 'FROM "runner_experimentxform" x WHERE x."experiment_id" = t1."experiment_id" AND '
GLANCE = Select(
    Membership,
    related=("session", "session__experiment", "group_session"),
    where='t1."run_token" = %s AND t1."experiment_id" = %s',
    prepare=True,
    extra=(
        f'(SELECT x."id" {_AT} x."order" = t1."current_order")',
        f'(SELECT x."handler" {_AT} x."order" = t1."current_order")',
        f"(SELECT x.\"handler\" {_AT} jsonb_typeof(t1.\"state\"->'last_done'->'order') = 'number'"
        " AND x.\"order\"::text = t1.\"state\"->'last_done'->>'order')",
        f"(SELECT md5(coalesce(string_agg({_FORMS_ROW}, '|' ORDER BY x.\"order\"), '')) FROM"
        ' "runner_experimentxform" x INNER JOIN "runner_form" f ON f."id" = x."form_id"'
        ' WHERE x."experiment_id" = t1."experiment_id")',
        f"(SELECT md5(coalesce(string_agg({_QUESTIONS_ROW}, '|' ORDER BY q.\"order\"), '')) FROM"
        ' "runner_formxquestion" q INNER JOIN "runner_question" qq ON qq."id" = q."question_id"'
        ' INNER JOIN "runner_dataformat" d ON d."id" = qq."data_format_id"'
        f' WHERE q."form_id" = (SELECT x."form_id" {_AT} x."order" = t1."current_order"))',
    ),
)
FULL_POSITIONS = Select(
    ExperimentXForm,
    related=("form",),
    where='t0."experiment_id" = %s ORDER BY t0."order"',
    extra=(f"""md5(string_agg(ROW(t0.*, t1.*)::text, '|') OVER (ORDER BY t0."order" {_ALL}))""",),
)
FULL_QUESTIONS = Select(
    FormXQuestion,
    related=("question", "question__data_format"),
    where=f't0."form_id" = {CURRENT_QUESTIONS_OF} ORDER BY t0."order"',
    extra=(f"""md5(string_agg(ROW(t0.*, t1.*, t2.*)::text, '|') OVER (ORDER BY t0."order" {_ALL}))""",),
)
NOTHING = hashlib.md5(b"").hexdigest()  # PostgreSQL's md5('') (a form without questions)
