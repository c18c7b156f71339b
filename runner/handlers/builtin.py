"""Built-in handlers for forms of questions and stimuli, feedback, consent and the end page."""

from __future__ import annotations

from urllib.parse import quote

from django.utils.safestring import mark_safe

from runner.errors import BadCallbackResult
from runner.policy_text import plain_language_summary

from . import register
from .base import BaseHandler, Outcome, Page, Prepared


@register("form_generic")
class GenericHandler(BaseHandler):
    """Questions (optionally after a jsPsych timeline). Clears the cached stimulus."""


@register("form_generic_s")
class GenericStimulusHandler(BaseHandler):
    """Questions about the stimulus cached by the preceding ``_s`` form (stored on each answer)."""

    stimulus_cache = "use"


@register("form_stimulus_s")
class StimulusHandler(BaseHandler):
    """A jsPsych timeline, then the form's questions. The stimulus script returns a
    timeline or ``(timeline, stimulus_id)``; the id is cached for following ``_s`` forms."""

    stimulus_cache = "set"


@register("form_image_s")
class ImageHandler(BaseHandler):
    """An image stimulus above the questions. The stimulus script returns a stimulus id
    (or ``(timeline, stimulus_id)``); the id is cached for following ``_s`` forms."""

    stimulus_cache = "set"
    template_name = "runner/handlers/image.html"

    def get_context(self, page: Page, form) -> dict:
        from runner.models import Stimulus

        stimulus = Stimulus.objects.filter(pk=page.stimulus_id).first() if page.stimulus_id else None
        url = stimulus.location.url if stimulus and stimulus.location else ""
        return {"image_url": url, "image_alt": (stimulus.description or stimulus.name) if stimulus else ""}


@register("form_feedback")
class FeedbackHandler(BaseHandler):
    """HTML returned by the stimulus script (feedback on earlier answers), then any questions.

    The HTML comes from the experiment's own code and is shown as written."""

    template_name = "runner/handlers/feedback.html"

    def interpret(self, result) -> Prepared:
        if result is None:
            return Prepared(html="")
        if not isinstance(result, str):
            raise BadCallbackResult("form_feedback's stimulus script must return an HTML string")
        return Prepared(html=result)

    def get_context(self, page: Page, form) -> dict:
        return {"feedback_html": mark_safe(page.current.get("html") or "")}  # noqa: S308 - experimenter's code


@register("group_trial")
class GroupTrialHandler(BaseHandler):
    """Per-participant trial (timeline, then questions). The groups app replaces this
    with its lockstep version via ``register_handler("group_trial", ..., replace=True)``."""


@register("form_consent")
class ConsentHandler(BaseHandler):
    """The consent text (the form's header), what will be stored (from the data policy),
    and either the form's questions or Agree / Do not agree buttons.

    Declining ends the session. With questions, answering a required choice question
    with anything but its first choice (e.g. "Disagree") counts as declining."""

    template_name = "runner/handlers/consent.html"
    DECLINE = "decline"

    def get_context(self, page: Page, form) -> dict:
        try:
            lines = plain_language_summary(page.session.experiment.data_policy or {})
        except Exception:  # a malformed policy must not hide the consent form
            lines = []
        return {"policy_lines": lines}

    def process(self, page: Page, form, post) -> Outcome:
        outcome = super().process(page, form, post)
        declined = post.get("_action") == self.DECLINE
        for fxq in page.form_questions:
            choices = fxq.question.data_format.choices or []
            value = outcome.answers.get(fxq.question.key)
            if fxq.required and choices and isinstance(value, str) and value != str(choices[0]):
                declined = True
        if not page.form_questions:
            outcome.items["consent"] = "declined" if declined else "agreed"
        outcome.end_session = declined
        return outcome

    def build_form(self, page: Page, data=None):
        form = super().build_form(page, data)
        if data is not None and data.get("_action") == self.DECLINE:
            for field in form.fields.values():  # declining needs no answers
                field.required = False
        return form


@register("form_end_session")
class EndSessionHandler(BaseHandler):
    """The last page: thanks, the SONA credit link (when the run started with ``sona=``)
    and the Prolific completion link. Entering it ends the session."""

    template_name = "runner/handlers/end.html"
    ends_session = True
    has_submit = False

    def get_context(self, page: Page, form) -> dict:
        session = page.session
        experiment = session.experiment
        sona = ""
        if session.sona_code and experiment.sona_url:
            sona = experiment.sona_url.replace("XXXX", quote(session.sona_code, safe=""))
        subject = session.subject
        from_prolific = bool(
            session.prolific_session_id or session.prolific_study_id or (subject and subject.prolific_pid_hmac)
        )
        prolific = experiment.prolific_completion_url if from_prolific else ""
        return {"sona_link": sona, "prolific_link": prolific}
