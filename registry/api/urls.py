from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from . import completeness, epro, outcomes, queries, survival, views

router = DefaultRouter()
router.register("sites", views.SiteViewSet, basename="site")
router.register("patients", views.PatientViewSet, basename="patient")
router.register("implants", views.ImplantViewSet, basename="implant")
router.register("visits", views.VisitViewSet, basename="visit")
router.register("adverse-events", views.AdverseEventViewSet, basename="adverse-event")
router.register("queries", queries.QueryViewSet, basename="query")

# Further /api/v1/ endpoints (outcomes, ...): add a path() line here, before the router.
v1_patterns = [
    path("exports/visits/", views.VisitExportView.as_view(), name="export-visits"),
    path("exports/visits/codebook/", views.VisitCodebookView.as_view(), name="codebook-visits"),
    path("exports/adverse-events/codebook/", views.AdverseEventCodebookView.as_view(),
         name="codebook-adverse-events"),
    path("exports/adverse-events/", views.AdverseEventExportView.as_view(),
         name="export-adverse-events"),
    path("outcomes/", outcomes.OutcomeSummaryView.as_view(), name="outcomes"),
    path("outcomes/proms/", outcomes.PromOutcomeView.as_view(), name="outcomes-proms"),
    path("outcomes/response-rates/", epro.ResponseRatesView.as_view(), name="outcomes-response-rates"),
    path("completeness/", completeness.CompletenessView.as_view(), name="completeness"),
    path("outcomes/explant-incidence/", survival.ExplantIncidenceView.as_view(),
         name="outcomes-explant-incidence"),
    path("outcomes/ipg-longevity/", survival.IpgLongevityView.as_view(), name="outcomes-ipg-longevity"),
    path("outcomes/attrition/", survival.AttritionView.as_view(), name="outcomes-attrition"),
    path("exports/prom-answers/", views.PromAnswerExportView.as_view(), name="export-prom-answers"),
    path("exports/implants/", views.ImplantExportView.as_view(), name="export-implants"),
    path("exports/implants/codebook/", views.ImplantCodebookView.as_view(), name="codebook-implants"),
    path("exports/safety/", views.SafetyTabulationExportView.as_view(), name="export-safety"),
    path("exports/safety/codebook/", views.SafetyCodebookView.as_view(), name="codebook-safety"),
]

urlpatterns = [
    path("v1/", include(v1_patterns + router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: it runs under the CSP.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
]
