"""Experiment definition files (SPEC section 3): parse, validate, load, dump.

    from runner.definitions import load_file, dump_experiment, DefinitionError

    try:
        result = load_file(path="experiments/demo/solo.yaml")
    except DefinitionError as exc:
        for line in exc.lines():  # "FILE:LINE: message", every error
            print(line)

Modules: ``nodes`` (YAML with line numbers), ``fields`` (typed reading),
``schema`` (the validated shape), ``validate`` (all checks), ``loader``
(database writes), ``dumper`` (database -> YAML).
"""

from .checks import loop_errors
from .dumper import dump_experiment, experiment_to_definition
from .issues import DefinitionError, Issue
from .loader import CREATED, UNCHANGED, UPDATED, LoadResult, load_definition, load_file, load_text, parse_definition
from .schema import ExperimentDef, FormDef, QuestionDef, definition_to_dict
from .validate import validate_text

__all__ = [
    "CREATED",
    "UNCHANGED",
    "UPDATED",
    "DefinitionError",
    "ExperimentDef",
    "FormDef",
    "Issue",
    "LoadResult",
    "QuestionDef",
    "definition_to_dict",
    "dump_experiment",
    "experiment_to_definition",
    "load_definition",
    "load_file",
    "load_text",
    "loop_errors",
    "parse_definition",
    "validate_text",
]
