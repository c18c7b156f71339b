"""What a bot sees on a page: the run form the server rendered (its hidden fields, its
questions with their widgets and limits), the jsPsych timeline, the lockstep element of a
group page, an end page or an error page. Parsed with the standard library's HTML parser,
from the same markup a browser gets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser

QUESTION_PREFIX = "q-"


@dataclass
class Field:
    """One named control of the run form, as rendered."""

    name: str
    kind: str  # radio | checkbox | select | text | textarea | number | range | email | date | tel
    required: bool = False
    choices: list[str] = field(default_factory=list)
    multiple: bool = False  # several checkboxes of one name
    min: float | None = None
    max: float | None = None
    step: str = ""
    maxlength: int | None = None

    @property
    def key(self) -> str:
        """The question key (``q-warmth`` -> ``warmth``), or the field name."""
        return self.name[len(QUESTION_PREFIX) :] if self.name.startswith(QUESTION_PREFIX) else self.name


@dataclass
class Page:
    status: int
    kind: str = "other"  # form | waiting | end | error | other
    form_name: str = ""
    handler: str = ""
    action: str = ""
    hidden: dict[str, str] = field(default_factory=dict)
    fields: dict[str, Field] = field(default_factory=dict)
    buttons: dict[str, list[str]] = field(default_factory=dict)  # submit button name -> values
    timeline: list | dict | None = None
    live: dict | None = None  # the live page's initial content (``<script id="live-initial">``)
    lockstep: dict[str, str] = field(default_factory=dict)
    error_code: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def step(self) -> int | None:
        value = self.lockstep.get("step")
        return int(value) if value not in (None, "") else None

    @property
    def order_visit(self) -> tuple[int, int]:
        return int(self.hidden.get("_order", -1) or -1), int(self.hidden.get("_visit", -1) or -1)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


class _Parser(HTMLParser):
    def __init__(self, page: Page):
        super().__init__(convert_charrefs=True)
        self.page = page
        self.in_form = False
        self.select: Field | None = None
        self.script_id = ""
        self.script: list[str] = []
        self.error_text = False

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if "data-error-code" in a:
            self.page.kind, self.page.error_code = "error", a["data-error-code"]
        if "data-end-page" in a:
            self.page.kind = "end"
        if "data-lockstep" in a:
            self.page.lockstep = {k[5:]: v for k, v in a.items() if k.startswith("data-") and k != "data-lockstep"}
        if tag == "form" and "data-run-form" in a:
            self.in_form = True
            self.page.kind = "form"
            self.page.form_name, self.page.handler = a.get("data-form", ""), a.get("data-handler", "")
            self.page.action = a.get("action", "")
        elif tag == "script" and a.get("type") == "application/json":
            self.script_id, self.script = a.get("id", ""), []
        elif "invalid-feedback" in a.get("class", ""):
            self.error_text = True
        elif self.in_form or a.get("form") == "run-form":
            self._control(tag, a)

    def handle_endtag(self, tag):
        if tag == "form" and self.in_form:
            self.in_form = False
        elif tag == "select":
            self.select = None
        elif tag == "script" and self.script_id:
            if self.script_id == "jspsych-timeline":
                self.page.timeline = json.loads("".join(self.script))
            elif self.script_id == "live-initial":
                self.page.live = json.loads("".join(self.script))
            self.script_id = ""
        elif tag == "div":
            self.error_text = False

    def handle_data(self, data):
        if self.script_id:
            self.script.append(data)
        elif self.error_text and data.strip():
            self.page.errors.append(data.strip())

    def _control(self, tag, a):
        name = a.get("name", "")
        if tag == "option" and self.select is not None:
            if a.get("value", ""):
                self.select.choices.append(a["value"])
            return
        if not name:
            return
        if tag == "select":
            self.select = self._field(name, "select", a)
        elif tag == "textarea":
            self._field(name, "textarea", a)
        elif tag == "button" and a.get("type", "submit") == "submit":
            self.page.buttons.setdefault(name, []).append(a.get("value", ""))
        elif tag == "input":
            kind = a.get("type", "text").lower()
            if kind == "hidden":
                if name != "_untouched":
                    self.page.hidden[name] = a.get("value", "")
            elif kind in ("radio", "checkbox"):
                f = self._field(name, kind, a)
                f.choices.append(a.get("value", "on"))
                f.multiple = kind == "checkbox" and len(f.choices) > 1
            else:
                self._field(name, kind, a)

    def _field(self, name: str, kind: str, a: dict) -> Field:
        f = self.page.fields.get(name)
        if f is None:
            f = self.page.fields[name] = Field(name, kind, required="required" in a)
            f.min, f.max, f.step = _number(a.get("min")), _number(a.get("max")), a.get("step", "")
            f.maxlength = int(a["maxlength"]) if a.get("maxlength", "").isdigit() else None
        return f


def parse_fragment(html: str, *, form: str, handler: str = "group_trial") -> Page:
    """The questions of a live step (the content's ``html``) as a run form."""
    return parse(200, f'<form data-run-form data-form="{form}" data-handler="{handler}">{html}</form>')


def parse(status: int, text: str) -> Page:
    """The page a bot got: ``kind`` says what it is (a lockstep page without a form is ``waiting``)."""
    page = Page(status=status)
    _Parser(page).feed(text)
    if page.kind == "other" and page.lockstep.get("mode") == "waiting":
        page.kind = "waiting"
    if page.kind == "other" and status >= 400:
        page.kind = "error"
    return page
