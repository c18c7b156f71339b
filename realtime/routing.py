"""WebSocket URL routes (SPEC section 5)."""

from django.urls import path  # noqa: F401

websocket_urlpatterns: list = []
