"""/q/<token>/: a patient's questionnaire link (short, for letters and QR codes)."""

from django.urls import path

from . import views

app_name = "epro"
urlpatterns = [
    path("q/<str:token>/", views.questionnaire, name="questionnaire"),
]
