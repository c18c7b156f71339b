from django.contrib import admin
from django.templatetags.static import static as static_url
from django.urls import include, path
from django.views.generic import RedirectView

from project.core import views as core_views

admin.site.site_header = "Ensemble Live editor"
admin.site.site_title = "Ensemble Live"
admin.site.index_title = "Experiments, sessions and data"

urlpatterns = [
    path("", core_views.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    # Browsers ask for /favicon.ico on pages without an icon link (the editor's admin pages).
    path("favicon.ico", RedirectView.as_view(url=static_url("img/favicon.ico"), permanent=True), name="favicon"),
    path("editor/exports/", include("exports.urls")),
    path("editor/bots/", include("bots.urls")),
    path("editor/", admin.site.urls),
    path("run/", include("runner.urls")),
    path("group/", include("groups.urls")),
]

# Nothing under MEDIA_URL is served by Django: stimuli are served (sandboxed) by asgi.py
# in every mode, and exports only through their permission-checked download view.
