"""System checks: declarations every channel relies on are complete."""

from django.apps import apps
from django.core import checks


@checks.register()
def deid_declares_every_field(app_configs=None, **kwargs):
    """Every model and every date and free-text field is in services.deid's declaration."""
    from registry.services import deid

    return [checks.Error(problem, hint="Declare it in registry/services/deid.py (MODELS).",
                         id="registry.E001")
            for problem in deid.undeclared(apps.get_app_config("registry").get_models())]
