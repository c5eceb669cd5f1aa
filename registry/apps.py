from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import pre_delete


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Neuromodulation registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # `checks` registers the system checks. The tasks register with Celery when their
        # module is imported: a web process enqueues them by name (the import job, the SAE
        # alert) and would otherwise find nothing registered (NotRegistered, a 500 on
        # "confirm import").
        from registry import checks, tasks  # noqa: F401
        from registry.services import audit
        from registry.services.proms import stored

        # Rows a delete cascades to get the deleting user and reason in their history.
        pre_delete.connect(audit.cascade_audit, dispatch_uid="registry-cascade-audit")
        # A saved or deleted PROM answer rewrites its visit's derived sheet.
        stored.connect()


class RegistryAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the registry's site as the default one (INSTALLED_APPS
    lists this instead of "django.contrib.admin")."""

    default = False  # "registry" in INSTALLED_APPS still means RegistryConfig
    default_site = "registry.admin_site.RegistryAdminSite"
