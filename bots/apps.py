from django.apps import AppConfig


class BotsConfig(AppConfig):
    name = "bots"
    verbose_name = "Bots and rehearsals"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Dropout policy "bot" (issue 20): the groups app hands a dropped-out participant's
        # run to its registered players; the bots play it on (bots/standin.py).
        from groups import flowservices

        from . import standin

        if standin.play not in flowservices.BOT_PLAYERS:
            flowservices.BOT_PLAYERS.append(standin.play)
