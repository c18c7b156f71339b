"""Baseline (3): what a Django developer would write first. A minimal Channels
consumer that ``group_send``s the state through stock channels-redis
(``RedisChannelLayer``, settings as documented, pool size raised only so nothing is
lost); each consumer serialises the state it is sent and writes it.

    DJANGO_SETTINGS_MODULE=bench.stock_app REDIS_URL=... daphne bench.stock_app:application

``/p`` participants (a state on connect and on each change), ``/c`` the controller
(``{"type": "advance", "step": N}``), ``/healthz`` HTTP 200.
"""

from __future__ import annotations

import json
import os
import time

SECRET_KEY = "benchmark-only-not-secret"
INSTALLED_APPS = ["channels"]
ALLOWED_HOSTS = ["*"]
USE_TZ = True
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), "max_connections": 1000}],
            "prefix": "bench-stock",
        },
    }
}

if os.environ.get("DJANGO_SETTINGS_MODULE") == "bench.stock_app":
    import django

    django.setup()
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import re_path

    STATE = {"version": 1, "step": 0}

    def state() -> dict:
        return {"type": "group.state", "version": STATE["version"], "group_session": 1, "phase": "running",
                "step": STATE["step"], "server_ms": int(time.time() * 1000), "shared_params": {}, "exit_loop": False,
                "run_url": "/run/1/", "size": 1000, "ready": 0, "active": 1000, "all_responded": False}  # fmt: skip

    class Participant(AsyncWebsocketConsumer):
        async def connect(self):
            await self.channel_layer.group_add("bench", self.channel_name)
            await self.accept()
            await self.state_update({"state": state()})

        async def disconnect(self, code):
            await self.channel_layer.group_discard("bench", self.channel_name)

        async def receive(self, text_data=None, bytes_data=None):
            pass  # acks and pings

        async def state_update(self, event):
            me = {"id": self.channel_name[-7:], "status": "waiting", "responded_step": None}
            await self.send(text_data=json.dumps({**event["state"], "me": me}))

    class Controller(AsyncWebsocketConsumer):
        async def receive(self, text_data=None, bytes_data=None):
            data = json.loads(text_data)
            if data.get("type") == "advance" and data.get("step") == STATE["step"]:
                STATE["version"] += 1
                STATE["step"] += 1
                await self.channel_layer.group_send("bench", {"type": "state.update", "state": state()})

    async def http_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok\n"})

    application = ProtocolTypeRouter(
        {
            "http": http_app,
            "websocket": URLRouter([re_path(r"^p", Participant.as_asgi()), re_path(r"^c", Controller.as_asgi())]),
        }
    )
