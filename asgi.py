"""ASGI entry point: HTTP (Django, with static files and imported stimuli served by
Starlette's StaticFiles so daphne needs no proxy) and WebSockets (Channels).

Run with ``daphne asgi:application``. Start-up stops with a clear message and a
non-zero exit when the encryption key cannot read the database (exit 3) or a test
broadcast through the channel layer is lost (exit 4, ``realtime.selfcheck``).
"""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.base")

import django  # noqa: E402

django.setup()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from project.core.keys import WrongEncryptionKey, verify_field_key  # noqa: E402

try:
    verify_field_key()
except WrongEncryptionKey as exc:  # stop start-up loudly, never serve ciphertext
    sys.stderr.write(f"\nERROR: {exc}\n\n")
    raise SystemExit(3) from exc

if settings.DELIVERY_SELFCHECK:
    from realtime.selfcheck import DeliveryCheckFailed, check_delivery  # noqa: E402

    try:
        check_delivery()  # a broadcast that would be lost stops start-up, loudly
    except DeliveryCheckFailed as exc:
        sys.stderr.write(f"\nERROR: {exc}\n\n")
        raise SystemExit(4) from exc

from project.core.http import get_http_application  # noqa: E402

django_http = get_http_application()  # Django, middleware and view in one thread per request

from project.core.static import StaticMount, stimuli_directory, stimulus_headers  # noqa: E402
from realtime.asgi import websocket_application  # noqa: E402

# Stimuli are served in every mode, sandboxed (project/core/static.py); the rest of
# MEDIA_ROOT (exports) is not served at all: exports have their permission-checked view.
http_application = StaticMount(
    StaticMount(django_http, prefix=settings.STATIC_URL, directory=settings.STATIC_ROOT),
    prefix=f"{settings.MEDIA_URL}stimuli/", directory=stimuli_directory(settings.MEDIA_ROOT), headers=stimulus_headers,
)  # fmt: skip

application = ProtocolTypeRouter({"http": http_application, "websocket": websocket_application})

from groups.timers import start_scheduler  # noqa: E402

start_scheduler()  # this process's group timers (issue 20; GROUP_TIMERS=0 turns it off)

from project.core.gc_tuning import tune_for_serving  # noqa: E402

tune_for_serving()  # last: what start-up built is frozen, not walked by every collection
