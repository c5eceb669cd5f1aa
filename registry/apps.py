from django.apps import AppConfig
from django.db.models.signals import pre_delete


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Neuromodulation registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from registry import checks  # noqa: F401  (registers the system checks)
        from registry.services import audit

        # Rows a delete cascades to get the deleting user and reason in their history.
        pre_delete.connect(audit.cascade_audit, dispatch_uid="registry-cascade-audit")
