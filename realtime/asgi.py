"""The WebSocket side of the ASGI app: Origin check, auth, routing."""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator

from .routing import websocket_urlpatterns
from .wire import RawSend

# RawSend outermost: the hub writes its frames with daphne's own send (realtime.wire)
websocket_application = RawSend(AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))))
