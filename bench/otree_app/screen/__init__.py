"""All players in one group; each round a trial page (one numeric answer) and a WaitPage
for the whole group, as a lockstep group session steps through its trials."""

from os import environ

from otree.api import BaseConstants, BaseGroup, BasePlayer, BaseSubsession, Page, WaitPage, models


class C(BaseConstants):
    NAME_IN_URL = "screen"
    PLAYERS_PER_GROUP = None  # one group of every player in the session
    NUM_ROUNDS = int(environ.get("SCREEN_ROUNDS", "11"))


class Subsession(BaseSubsession):
    pass


class Group(BaseGroup):
    pass


class Player(BasePlayer):
    rating = models.IntegerField(min=1, max=7, label="How warm is this colour?")


class Trial(Page):
    form_model = "player"
    form_fields = ["rating"]


class Sync(WaitPage):
    pass


page_sequence = [Trial, Sync]
