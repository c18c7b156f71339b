from django.urls import path

from . import live_views, views

app_name = "groups"

urlpatterns = [
    path("create/", views.group_create, name="create"),
    path("session/start/", views.session_start, name="session_start"),
    path("session/status/<int:group_session_id>/", views.session_status, name="session_status"),
    path("session/status/<int:group_session_id>/notes/", views.session_notes, name="session_notes"),
    path("session/status/<int:group_session_id>/answers/", views.session_answers, name="session_answers"),
    path("session/projector/<int:group_session_id>/", views.session_projector, name="session_projector"),
    path("session/status/<int:group_session_id>/failures/", views.session_failures, name="session_failures"),
    path("session/status/<int:group_session_id>/store/", views.session_store, name="session_store"),
    path("session/attach/participant/", views.attach_participant, name="attach_participant"),
    path("session/attach/experimenter/", views.attach_experimenter, name="attach_experimenter"),
    path("live/<int:experiment_id>/content/", live_views.live_content_view, name="live_content"),
    path("live/<int:experiment_id>/answer/", live_views.live_answer_view, name="live_answer"),
]
