"""WebSocket URL routes (SPEC section 5).

Participant sockets authenticate by their run cookie only, so they get the cookies
and nothing else: Channels' session and auth middleware would look the (absent)
Django login up through the one database thread for every socket, which a room of
1000 connecting at once queued behind each other (bench/connections.py). The
experimenter's socket needs the login and gets the whole stack.
"""

from channels.auth import AuthMiddlewareStack
from channels.sessions import CookieMiddleware
from django.urls import path, re_path

from .consumers import ExperimenterConsumer, NotFoundConsumer, ParticipantConsumer

websocket_urlpatterns = [
    path("ws/group/<int:group_session_id>/participant/", CookieMiddleware(ParticipantConsumer.as_asgi())),
    path("ws/group/<int:group_session_id>/experimenter/", AuthMiddlewareStack(ExperimenterConsumer.as_asgi())),
    re_path(r"", NotFoundConsumer.as_asgi()),
]
