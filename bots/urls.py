from django.urls import path

from . import views

app_name = "bots"
urlpatterns = [
    path("rehearse/<int:experiment_id>/", views.rehearse, name="rehearse"),
    path("rehearsals/<int:rehearsal_id>/", views.rehearsal_page, name="rehearsal"),
]
