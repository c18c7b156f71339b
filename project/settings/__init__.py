"""Settings package: ``base`` (everything, from the environment), ``test`` and
``production`` (small overrides). ``DJANGO_SETTINGS_MODULE`` picks one;
``manage.py`` and ``asgi.py`` default to ``project.settings.base``."""
