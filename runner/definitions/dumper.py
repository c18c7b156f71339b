"""Database -> definition file (the inverse of the loader).

``dump_experiment(experiment)`` writes YAML that ``load_experiment`` reads back
to the same experiment: dump(load(f)) == dump(load(dump(load(f)))).
"""

from __future__ import annotations

import yaml

from runner.models import Experiment

from .schema import CHOICE_TYPES, RANGE_TYPES, ExperimentDef, FormDef, QuestionDef, definition_to_dict

HEADER = "# Ensemble Live experiment definition. Load with: manage.py load_experiment FILE.yaml\n"


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line text (HTML headers) as readable literal blocks."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _list_representer(dumper: yaml.SafeDumper, data: list) -> yaml.SequenceNode:
    flow = all(isinstance(x, (str, int, float)) and "\n" not in str(x) for x in data) and len(repr(data)) < 90
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _dict_representer(dumper: yaml.SafeDumper, data: dict) -> yaml.MappingNode:
    numbers = bool(data) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=numbers and len(data) <= 4)


_Dumper.add_representer(str, _str_representer)
_Dumper.add_representer(list, _list_representer)
_Dumper.add_representer(dict, _dict_representer)


def _question_definitions(form) -> list[QuestionDef]:
    """The form's questions in order, each with its choices or range where its widget has them."""
    questions = []
    for fxq in form.form_questions.select_related("question__data_format").order_by("order"):
        question, data_format = fxq.question, fxq.question.data_format
        questions.append(
            QuestionDef(
                key=question.key,
                text=question.text,
                widget=question.widget,
                choices=[str(c) for c in data_format.choices] if question.widget in CHOICE_TYPES else [],
                range=dict(data_format.range or {}) if question.widget in RANGE_TYPES else {},
                required=fxq.required,
            )
        )
    return questions


def _form_definition(link, position_by_order: dict[int, int]) -> FormDef:
    """One form link of the sequence; ``goto`` as a position in it (1-based), as definitions say."""
    form = link.form
    return FormDef(
        name=form.name,
        handler=link.handler,
        title=form.title,
        header=form.header,
        footer=form.footer,
        questions=_question_definitions(form),
        stimulus_script=link.stimulus_script,
        condition_script=link.condition_script,
        repeat=link.repeat,
        goto=None if link.goto is None else position_by_order.get(link.goto, link.goto),
        break_loop_button=link.break_loop_button,
        break_loop_button_text=link.break_loop_button_text,
        continue_button_text=link.continue_button_text,
        jspsych_width=link.jspsych_width,
        flow=dict(link.flow or {}),
    )


def experiment_to_definition(experiment: Experiment) -> ExperimentDef:
    """Read an experiment, its form links, forms and questions into an ExperimentDef."""
    links = list(experiment.experiment_forms.select_related("form").order_by("order"))
    position_by_order = {link.order: position for position, link in enumerate(links, start=1)}
    forms = [_form_definition(link, position_by_order) for link in links]
    return ExperimentDef(
        slug=experiment.slug,
        title=experiment.title,
        description=experiment.description,
        is_group=experiment.is_group,
        group_size=experiment.group_size,
        params=dict(experiment.params or {}),
        group_flow=experiment.group_flow,
        data_policy=dict(experiment.data_policy or {}),
        sona_url=experiment.sona_url,
        prolific_completion_url=experiment.prolific_completion_url,
        dropout=dict(experiment.dropout or {}),
        lobby=dict(experiment.lobby or {}),
        forms=forms,
    )


def definition_yaml(definition: ExperimentDef) -> str:
    """The YAML text of a definition."""
    return mapping_yaml(definition_to_dict(definition))


def mapping_yaml(data: dict) -> str:
    """A definition given as a plain mapping (e.g. from the survey builder) as YAML text,
    in the style of a dumped file, so that the loader's line numbers point into it."""
    body = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=110,
    )
    return HEADER + body


def dump_experiment(experiment: Experiment) -> str:
    """The definition file (YAML text) of an experiment as it is in the database."""
    return definition_yaml(experiment_to_definition(experiment))
