"""Built-in handlers that collect who the participant is: registration, email, email login."""

from __future__ import annotations

from runner.forms import add_subject_fields

from . import register
from .base import BaseHandler, Outcome, Page


def _subject_values(form, names) -> dict:
    return {name: form.cleaned_data.get(f"subject_{name}") for name in names}


@register("form_subject_register")
class SubjectRegisterHandler(BaseHandler):
    """Name, email, date of birth and phone (stored encrypted on the Subject, through the
    data policy); ``Session.age`` is computed from the date of birth."""

    template_name = "runner/handlers/person.html"
    fields = ("name_first", "name_last", "email", "dob", "phone")

    def build_form(self, page: Page, data=None):
        form = super().build_form(page, data)
        add_subject_fields(form, self.fields)
        return form

    def process(self, page: Page, form, post) -> Outcome:
        outcome = super().process(page, form, post)
        values = _subject_values(form, self.fields)
        outcome.subject_fields = {k: v for k, v in values.items() if v not in (None, "")}
        return outcome


@register("form_subject_email")
class SubjectEmailHandler(SubjectRegisterHandler):
    """Collects an email address (stored encrypted on the Subject, with its HMAC)."""

    fields = ("email",)


@register("form_login_w_email")
class LoginWithEmailHandler(SubjectRegisterHandler):
    """Email login: the participant enters an address, gets a signed link by email, and
    continues once the link is opened. A returning participant (same verified email)
    is linked to their earlier Subject record."""

    fields = ("email",)
    template_name = "runner/handlers/login_email.html"

    def process(self, page: Page, form, post) -> Outcome:
        outcome = super().process(page, form, post)
        outcome.stay = True
        outcome.verify_email = form.cleaned_data["subject_email"]
        return outcome

    def get_context(self, page: Page, form) -> dict:
        return {"email_sent": bool(page.current.get("email_sent"))}
