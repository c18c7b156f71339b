"""A form's ``jspsych_width``: normal (720 px), wide (1200 px) or a number of pixels sets the
participant page's width, so a wide jsPsych stimulus is not clipped (issue 17)."""

from __future__ import annotations

import re

import pytest

from runner.models import ExperimentXForm
from runner.models.design import jspsych_width_px
from tests.runner.builders import CB, build_experiment, start


@pytest.mark.parametrize(("value", "px"), [("normal", 720), ("wide", 1200), ("WIDE", 1200), (900, 900),
                                           ("900", 900), (" 320 ", 320), (2400, 2400)])  # fmt: skip
def test_accepted_widths(value, px):
    assert jspsych_width_px(value) == px


@pytest.mark.parametrize("value", ["huge", "", "-900", "900px", 319, 2401, 1.5, True, None, [800]])
def test_refused_widths_name_what_is_accepted(value):
    with pytest.raises(ValueError, match="normal, wide or a number of pixels from 320 to 2400"):
        jspsych_width_px(value)


def _card_style(client, experiment) -> str:
    start(client, experiment)
    page = client.get(f"/run/{experiment.pk}/").content.decode()
    card = re.search(r'<div class="participant-card"([^>]*)>', page)
    assert card, page[:500]
    return card.group(1)


@pytest.mark.django_db
@pytest.mark.parametrize(("width", "style"), [("wide", "max-width: 1200px"), ("1000", "max-width: 1000px")])
def test_wide_form_widens_its_page(client, width, style):
    experiment = build_experiment([{"stimulus_script": f"{CB}.one_trial"}, {"handler": "form_end_session"}])
    ExperimentXForm.objects.filter(experiment=experiment, order=1).update(jspsych_width=width)
    attributes = _card_style(client, experiment)
    assert style in attributes and f'data-page-width="{width.replace("wide", "1200")}"' in attributes


@pytest.mark.django_db
def test_normal_form_keeps_the_normal_page(client):
    experiment = build_experiment([{"stimulus_script": f"{CB}.one_trial"}, {"handler": "form_end_session"}])
    attributes = _card_style(client, experiment)
    assert "style" not in attributes and 'data-page-width="720"' in attributes
