from django.urls import path

from runner import editor_views, views
from runner.views import jspsych

app_name = "runner"

urlpatterns = [
    path("<int:experiment_id>/start/", views.start, name="start"),
    path("<int:experiment_id>/", views.run_page, name="run"),
    path("<int:experiment_id>/verify/<str:token>/", views.verify_email, name="verify_email"),
    path("<int:experiment_id>/package/<str:package>/jspsych.js", jspsych.package_script, name="package_script"),
    path("<int:experiment_id>/timeline-failure/", jspsych.report_failure, name="timeline_failure"),
    path("editor/failures/<int:failure_id>/skip/", jspsych.skip_failure, name="skip_failure"),
    path("editor/stimuli/import/", editor_views.stimulus_import, name="stimulus_import"),
]
