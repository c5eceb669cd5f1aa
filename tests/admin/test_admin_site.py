"""The default admin site is the registry's own AdminSite subclass, made the default
the Django way (AdminConfig.default_site); no module patches its methods."""

import inspect

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from registry.admin.imports import ImportRunAdmin
from registry.admin.patients import PatientAdmin
from registry.admin_site import RegistryAdminSite
from registry.models import ImportRun, Patient


def test_the_default_site_is_the_registry_site():
    assert apps.get_app_config("admin").default_site == "registry.admin_site.RegistryAdminSite"
    assert admin.site.__class__ is RegistryAdminSite


def test_no_module_replaces_a_method_of_the_default_site():
    site = admin.site._wrapped  # the instance behind Django's lazy default site
    # A method patched on the instance is an instance attribute.
    assert [name for name, value in vars(site).items() if callable(value)] == []
    assert site.get_urls.__func__ is RegistryAdminSite.get_urls
    assert site.get_app_list.__func__ is RegistryAdminSite.get_app_list
    # A method patched on a class comes from another module than the class.
    for name, func in inspect.getmembers(RegistryAdminSite, inspect.isfunction):
        owner = next(cls for cls in RegistryAdminSite.__mro__ if name in vars(cls))
        assert func.__module__ == owner.__module__, f"{owner.__name__}.{name} is {func.__module__}'s"


def test_admin_register_registers_on_the_registry_site():
    assert isinstance(admin.site._registry[Patient], PatientAdmin)
    # One registration of the import log, with its upload pages.
    assert type(admin.site._registry[ImportRun]) is ImportRunAdmin
    assert reverse("admin:registry_importrun_upload") == "/admin/registry/importrun/upload/"


@pytest.mark.django_db
def test_the_outcomes_dashboard_is_a_page_of_the_site(login, nurse, outsider):
    assert reverse("admin:registry_outcomes") == "/admin/registry/outcomes/"
    client = login(nurse)
    response = client.get("/admin/registry/outcomes/")
    assert response.status_code == 200
    assert "admin/registry/outcomes/dashboard.html" in [t.name for t in response.templates]
    assert response.context["site_header"] == admin.site.site_header
    assert login(outsider).get("/admin/registry/outcomes/").status_code == 403


@pytest.mark.django_db
def test_the_registry_app_list_starts_with_the_outcomes_dashboard(login, nurse):
    response = login(nurse).get("/admin/")
    registry = next(app for app in response.context["app_list"] if app["app_label"] == "registry")
    assert registry["models"][0]["name"] == "Outcomes dashboard"
    assert registry["models"][0]["admin_url"] == "/admin/registry/outcomes/"
    # The app's own page lists it too.
    response = login(nurse).get("/admin/registry/")
    assert response.context["app_list"][0]["models"][0]["name"] == "Outcomes dashboard"
