from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("account/", include("registry.accounts.urls")),  # second factor, session timer
    path("admin/", admin.site.urls),
    path("api/", include("registry.api.urls")),
    path("", include("registry.interop.urls")),  # /redcap/api/ and /fhir/
    path("", include("registry.epro.urls")),  # /q/<token>/: the patients' questionnaire links
]
