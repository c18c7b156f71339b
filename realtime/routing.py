"""WebSocket URL routes (SPEC section 5)."""

from django.urls import path, re_path

from .consumers import ExperimenterConsumer, NotFoundConsumer, ParticipantConsumer

websocket_urlpatterns = [
    path("ws/group/<int:group_session_id>/participant/", ParticipantConsumer.as_asgi()),
    path("ws/group/<int:group_session_id>/experimenter/", ExperimenterConsumer.as_asgi()),
    re_path(r"", NotFoundConsumer.as_asgi()),
]
