from django.urls import path

from runner import editor_views, views

app_name = "runner"

urlpatterns = [
    path("<int:experiment_id>/start/", views.start, name="start"),
    path("<int:experiment_id>/", views.run_page, name="run"),
    path("<int:experiment_id>/verify/<str:token>/", views.verify_email, name="verify_email"),
    path("editor/stimuli/import/", editor_views.stimulus_import, name="stimulus_import"),
]
