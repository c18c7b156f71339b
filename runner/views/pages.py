"""Rendering helpers shared by the runner views: error pages and the current visit."""

from __future__ import annotations

from django.shortcuts import render

from runner import jspsych_package, selectors
from runner.errors import RunError
from runner.flow import loop_containing
from runner.handlers import Page, get_handler
from runner.handlers.base import jspsych_limits


def error_page(request, exc: RunError, *, experiment=None):
    """A friendly page for a runner error, with its HTTP status."""
    return render(
        request,
        "runner/error.html",
        {"title": exc.title, "message": exc.message, "code": exc.code, "experiment": experiment},
        status=exc.status,
    )


def page_for(session, *, request=None) -> tuple[Page, object, list]:
    """The Page (visit on screen) of a session, its handler and the experiment's positions."""
    positions = selectors.positions(session.experiment)
    current = session.state["current"]
    position = selectors.position_at(positions, current["order"])
    page = Page(
        session=session,
        position=position,
        current=current,
        form_questions=selectors.form_questions(position.form),
        request=request,
        total_forms=len(positions),
    )
    return page, get_handler(position.handler), positions


def _visit_context(session, page, form, handler, positions) -> dict:
    """The template context every visit has: the page, its form, where it is in the
    sequence (step, loop round) and its jsPsych field; the handler adds its own."""
    position = page.position
    index = [p.order for p in positions].index(position.order) + 1
    loop = loop_containing(selectors.steps_of(positions), position.order)
    jspsych_field = form["_jspsych"] if "_jspsych" in form.fields else None
    return {
        "experiment": session.experiment,
        "session": session,
        "page": page,
        "position": position,
        "form_obj": position.form,
        "form": form,
        "handler": handler,
        "step_number": index,
        "step_total": len(positions),
        "progress_percent": round(100 * index / max(len(positions), 1)),
        "loop_round": page.visit if loop else None,
        "loop_rounds": max(loop.repeat, 1) if loop else None,
        "timeline": page.timeline,
        "jspsych_field": jspsych_field,
        "jspsych_max_bytes": jspsych_limits()["bytes"] if page.timeline else 0,
        "jspsych_done": bool(
            form.is_bound and jspsych_field is not None and not jspsych_field.errors and jspsych_field.value()
        ),
        "show_break_loop": bool(position.break_loop_button and position.repeat is not None),
    }


def render_visit(request, session, *, page=None, form=None, status: int = 200):
    """Render the visit on screen (or the closing page of a finished run)."""
    state = session.state
    if not state.get("current"):
        return render(
            request,
            "runner/done.html",
            {"experiment": session.experiment, "declined": bool(state.get("declined"))},
            status=status,
        )
    if selectors.position_at(selectors.positions(session.experiment), state["current"]["order"]) is None:
        return render(request, "runner/done.html", {"experiment": session.experiment, "declined": False})
    fresh_page, handler, positions = page_for(session, request=request)
    page = page or fresh_page
    context = visit_context(session, page, handler, positions, form=form)
    return render(request, handler.template_name, context, status=status)


def visit_context(session, page, handler, positions, *, form=None) -> dict:
    """The whole template context of a visit (the handler's ``get_context`` included, which
    may choose ``handler.template_name``); also what the live page's shell is rendered
    from (``groups.live_page``)."""
    form = form if form is not None else handler.build_form(page)
    context = _visit_context(session, page, form, handler, positions)
    context.update(handler.get_context(page, form))
    if context.get("timeline"):  # (a group trial's timeline comes from get_context)
        context["jspsych_max_bytes"] = jspsych_limits()["bytes"]
        context["jspsych_package"] = jspsych_package.page_script(session.experiment_id, page.position.stimulus_script)
    return context
