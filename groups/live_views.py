"""The live page's two HTTP routes (docs/groups.md, "The live page"):

- ``GET /group/live/<experiment_id>/content/``: the current step's content for this
  browser's run (JSON). Reads only: no group-session lock, no write.
- ``POST /group/live/<experiment_id>/answer/``: an answer without navigation. Stored
  like the run page's POST (``runner.batching``: answers arriving together go in one
  transaction); the reply is JSON: stored / duplicate and the next visit, the questions
  re-rendered with their errors, or a refusal with its code (nothing stored).
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from runner import batching
from runner import selectors as runner_selectors
from runner.errors import NoRunError, RunError
from runner.forms import PREFIX
from runner.run_cookie import read_run_token
from runner.views.run import submission_from

from . import live_content, selectors
from .lockstep import STEP_FIELD

NO_RUN = {"ok": False, "code": "no_run", "message": NoRunError.in_this_browser().message}
STALE_VISIT = "This page had already been answered or replaced; it shows the current trial again."
STALE = {"ok": False, "code": "stale_visit", "message": STALE_VISIT}


@never_cache
@require_GET
def live_content_view(request, experiment_id: int):
    session = runner_selectors.session_for_request(request, experiment_id)
    if session is None:
        return JsonResponse(NO_RUN, status=404)
    return JsonResponse(live_content.participant_content(session))


@never_cache
@require_POST
def live_answer_view(request, experiment_id: int):
    token = read_run_token(request.COOKIES, experiment_id)
    if token is None:
        return JsonResponse(NO_RUN, status=404)
    from runner.policy import InvalidPolicy, PolicyViolation

    try:
        # A group's answers come together: stored in batches (runner/batching.py), as on the run page.
        key = experiment_id if runner_selectors.is_group(experiment_id) else None
        result = batching.submit(submission_from(request, experiment_id, session=None, run_token=token), key=key)
    except (PolicyViolation, InvalidPolicy) as exc:
        return JsonResponse({"ok": False, "code": "policy_violation", "message": str(exc)}, status=400)
    except RunError as exc:
        status = exc.status if 400 <= exc.status < 500 and exc.status != 404 else 409
        return JsonResponse({"ok": False, "code": exc.code, "message": exc.message}, status=status)
    if result.kind == "invalid":
        from runner.handlers import get_handler

        handler = get_handler(result.page.position.handler)
        errors = {name: [str(m) for m in messages] for name, messages in result.form.errors.items()}
        html = live_content.questions_html(result.page, handler, result.form,
                                           has_timeline=bool(result.page.position.stimulus_script))  # fmt: skip
        return JsonResponse({"ok": False, "code": "invalid", "errors": errors, "html": html}, status=400)
    if result.kind == "stale":
        return JsonResponse(STALE, status=409)
    session = runner_selectors.session_for_request(request, experiment_id)  # as stored now
    if result.kind == "duplicate" and not _repeats_its_answer(request.POST, session):
        return JsonResponse(STALE, status=409)
    return JsonResponse(_next(session, experiment_id, stored=result.kind == "stored"))


def _repeats_its_answer(post, session) -> bool:
    """Whether a POST of the run's last stored visit is a resend of that answer (a double
    click, a retry after a lost reply): it names the group step that visit answered (the
    step field the lockstep form reads). A page whose visit was answered for it (a stand-in
    bot while it was away) names a later step with that visit: storing nothing and saying
    "stored" would lose its answer, so it is refused as stale and the page asks for its
    current visit."""
    step = post.get(f"{PREFIX}-{STEP_FIELD}")
    answered = selectors.answered_step(session.pk) if step is not None and session is not None else None
    return answered is None or str(answered) == step.strip()


def _next(session, experiment_id: int, *, stored: bool) -> dict:
    """Where the run (``session``, as stored now) goes after an answer: it waits on the live
    page for the group's next step (its next visit is a lockstep trial), or leaves the group part."""
    url = f"/run/{experiment_id}/"
    visit = live_content.ident(session) if session is not None else None
    stays = session is not None and visit is not None and live_content.is_lockstep_visit(session)
    return {"ok": True, "stored": stored, "next": "wait" if stays else "leave", "url": url,
            "visit": visit if stays else None}  # fmt: skip
