"""The WebSocket side of the ASGI app: Origin check, routing (each route brings the
middleware it needs: realtime/routing.py)."""

from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator

from .routing import websocket_urlpatterns
from .wire import RawSend

# RawSend outermost: the hub writes its frames with daphne's own send (realtime.wire)
websocket_application = RawSend(AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)))
