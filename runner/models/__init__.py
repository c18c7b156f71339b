"""Data model of experiments and runs (PyEnsemble's "Structure", done properly).

Split by domain: ``design`` (what an experiment is), ``stimuli``, ``runs`` (who
took part and what they answered).
"""

from .design import (
    DataFormat,
    Experiment,
    ExperimentXForm,
    Form,
    FormXQuestion,
    Handler,
    Question,
    Study,
    StudyXExperiment,
    WidgetType,
)
from .failures import TimelineFailure
from .runs import Response, Session, Subject, Ticket
from .stimuli import Attribute, AttributeXAttribute, ExperimentXStimulus, Stimulus, StimulusXAttribute

__all__ = [
    "Attribute",
    "AttributeXAttribute",
    "DataFormat",
    "Experiment",
    "ExperimentXForm",
    "ExperimentXStimulus",
    "Form",
    "FormXQuestion",
    "Handler",
    "Question",
    "Response",
    "Session",
    "Stimulus",
    "StimulusXAttribute",
    "Study",
    "StudyXExperiment",
    "Subject",
    "Ticket",
    "TimelineFailure",
    "WidgetType",
]
