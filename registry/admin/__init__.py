from . import (  # noqa: F401
    accounts,
    events,
    implants,
    imports,
    operations,
    outcomes,
    patients,
    protocol,
    reminders,
    scheduler,
    sites,
    visits,
)
