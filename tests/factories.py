"""factory_boy factories for the data model (STYLE.md 14). ``.build()`` for pure tests."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from groups.models import Group, GroupSession
from runner.models import (
    DataFormat,
    Experiment,
    ExperimentXForm,
    Form,
    FormXQuestion,
    Question,
    Response,
    Session,
    Subject,
    Ticket,
    WidgetType,
)


class DataFormatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DataFormat
        django_get_or_create = ("signature",)

    df_type = DataFormat.Type.ENUM
    choices = factory.LazyFunction(lambda: ["Yes", "No"])
    range = factory.LazyFunction(dict)
    signature = factory.LazyAttribute(lambda o: DataFormat.make_signature(o.df_type, o.choices, o.range))


class ExperimentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Experiment

    slug = factory.Sequence(lambda n: f"experiment-{n}")
    title = factory.Sequence(lambda n: f"Experiment {n}")


class QuestionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Question

    key = factory.Sequence(lambda n: f"q{n}")
    text = factory.Sequence(lambda n: f"Question {n}?")
    widget = WidgetType.RADIOGROUP
    data_format = factory.SubFactory(DataFormatFactory)


class FormFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Form

    name = factory.Sequence(lambda n: f"form-{n}")


class FormXQuestionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FormXQuestion

    form = factory.SubFactory(FormFactory)
    question = factory.SubFactory(QuestionFactory)
    order = factory.Sequence(lambda n: n + 1)
    required = True


class ExperimentXFormFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExperimentXForm

    experiment = factory.SubFactory(ExperimentFactory)
    form = factory.SubFactory(FormFactory)
    order = factory.Sequence(lambda n: n + 1)
    handler = "form_generic"


class TicketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Ticket

    experiment = factory.SubFactory(ExperimentFactory)
    type = Ticket.Type.MASTER


class SubjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subject


class SessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Session

    experiment = factory.SubFactory(ExperimentFactory)
    subject = factory.SubFactory(SubjectFactory)
    ticket = factory.SubFactory(TicketFactory, experiment=factory.SelfAttribute("..experiment"))


class ResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Response

    session = factory.SubFactory(SessionFactory)
    subject = factory.SelfAttribute("session.subject")
    experiment = factory.SelfAttribute("session.experiment")
    form = factory.SubFactory(FormFactory)
    form_order = 1
    visit = 1
    question = factory.SubFactory(QuestionFactory)
    item = factory.LazyAttribute(lambda o: o.question.key if o.question else "jspsych:0")
    value = "Yes"


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group

    name = factory.Sequence(lambda n: f"group-{n}")


class GroupSessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GroupSession

    experiment = factory.SubFactory(ExperimentFactory, is_group=True)
    group = factory.SubFactory(GroupFactory)
    participant_code = factory.Sequence(lambda n: f"P{n:03d}"[-4:])
    experimenter_code = factory.Sequence(lambda n: f"E{n:03d}"[-4:])
    expires = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=12))
