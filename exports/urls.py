from django.urls import path

from . import views

app_name = "exports"

urlpatterns = [
    path("", views.index, name="index"),
    path("jobs/<int:job_id>/status/", views.job_status, name="job_status"),
    path("jobs/<int:job_id>/download/", views.job_download, name="job_download"),
    path("<slug:slug>/", views.experiment_page, name="experiment"),
    path("<slug:slug>/delete-previews/", views.delete_previews, name="delete_previews"),
    path("<slug:slug>/sessions/", views.sessions_page, name="sessions"),
    path("<slug:slug>/sessions/<int:session_id>/exclusion/", views.set_exclusion, name="set_exclusion"),
]
