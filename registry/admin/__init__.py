"""The data-entry admin: one module per aggregate, as in registry/models/ (sites,
patients, implants, visits, events, protocol, accounts), shared classes in base.py
and forms.py, and the operations pages (imports, reminders, outcomes, scheduler).
The admin site itself is registry.admin_site.RegistryAdminSite."""

from . import (  # noqa: F401
    accounts,
    disposition,
    events,
    implants,
    imports,
    operations,
    patients,
    proms,
    protocol,
    queries,
    reminders,
    safety,
    scheduler,
    sites,
    visits,
)
