"""URLs of the interoperability channels: /redcap/api/ and /fhir/."""

from django.urls import path

from . import fhir, redcap

urlpatterns = [
    # PyCap insists the URL ends in /api/.
    path("redcap/api/", redcap.redcap_api, name="redcap-api"),
    path("fhir/metadata", fhir.capability_statement, name="fhir-metadata"),
    path("fhir/$export", fhir.bulk_export, name="fhir-export"),
    path("fhir/$export-status", fhir.bulk_export_status, name="fhir-export-status"),
    path("fhir/$export/<str:resource_type>.ndjson", fhir.bulk_export_file, name="fhir-export-file"),
    path("fhir/<str:resource_type>", fhir.search, name="fhir-search"),
    path("fhir/<str:resource_type>/<str:resource_id>", fhir.read, name="fhir-read"),
]
