from . import (  # noqa: F401
    accounts,
    events,
    implants,
    imports,
    operations,
    patients,
    protocol,
    reminders,
    scheduler,
    sites,
    visits,
)
