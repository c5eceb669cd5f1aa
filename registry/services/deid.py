"""Calendar dates for users who may not see them: shifted per patient.

The rule (REDCap's own de-identification option, "shift all dates by a value
between 0 and 364 days"):

- Data managers and research nurses see real dates (a nurse only ever sees her
  own sites, where she also sees identifiers).
- Everyone else (investigators) sees every clinical calendar date of a patient
  moved back by that patient's shift: 0-364 days, derived from the registry id
  with an HMAC keyed by SECRET_KEY. The same patient shifts by the same amount
  in every channel and every request, so intervals within a patient (days
  from implant, follow-up length, onset after implant) stay exact, while the
  amount itself cannot be computed without the key.
- Filters on clinical dates are refused for them: bisecting a range filter
  would reveal the real date behind a shifted one.

Record modification times (`updated_at`, `_lastUpdated`, `updated_since`) are
not clinical dates: they stay real, incremental pulls depend on them.
"""

import datetime
import functools
import hashlib
import hmac
from collections.abc import Iterable

from django.conf import settings

from registry.models import Role

from .access import role_name

SHIFT_RANGE = 365  # shifts are 0..364 days
# Fixed label: the key also signs sessions and tokens; this keeps the shift's
# HMAC input apart from anything else computed with SECRET_KEY.
_SHIFT_LABEL = b"neuromodulation-registry:date-shift:v1:"
SHIFTED_NOTE = ("Investigators see this date shifted back by 0-364 days, the same amount for every "
                "date of the patient (intervals are exact); nurses and data managers see it as recorded.")


def sees_real_dates(user) -> bool:
    """Data managers and nurses see real dates; investigators and anyone else do not."""
    return role_name(user) in (Role.DATA_MANAGER, Role.NURSE)


def date_shift_days(registry_id: str) -> int:
    """The patient's shift in days (0..364): deterministic, secret without SECRET_KEY."""
    return _shift(settings.SECRET_KEY, registry_id)


@functools.lru_cache(maxsize=65536)
def _shift(key: str, registry_id: str) -> int:
    # Cached per key too, so a changed SECRET_KEY (tests, key rotation) gives new shifts.
    digest = hmac.new(key.encode(), _SHIFT_LABEL + registry_id.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest, "big") % SHIFT_RANGE


def shifted(value: datetime.date | None, days: int) -> datetime.date | None:
    """`value` moved back by `days` (None stays None)."""
    return None if value is None else value - datetime.timedelta(days=days)


API_HINT = "filter on timepoint (or on days_from_implant in the export) instead"


def date_filter_refusal(param: str, hint: str = API_HINT) -> str:
    """Why a clinical-date filter is refused, and what to do instead."""
    return (f"'{param}': date filters need real dates, which investigators do not see (dates are "
            f"shifted per patient); {hint}, or ask a data manager.")


def refused_date_filters(user, sent: Iterable[str], date_params: Iterable[str], *,
                         hint: str = API_HINT) -> dict[str, list[str]]:
    """The clinical-date parameters among `sent` that `user` may not use, each with its message.

    `sent`: the query parameters of the request (empty values left out);
    `date_params`: the parameters that filter on a clinical calendar date.
    """
    if sees_real_dates(user):
        return {}
    wanted = set(date_params)
    return {param: [date_filter_refusal(param, hint)] for param in sent if param in wanted}
