"""What the clinic sees of the questionnaire links: per patient, per site, per timepoint.

`pending_invitations_for(user)` is the count for the nurse's home page: visits at her
sites with a link out that the patient has not answered yet, while it still works.
`response_rates(user)` gives the dashboard's figures: of the visits a patient was sent
or handed a link for, how many she answered herself, per site and timepoint (groups
smaller than the user's `deid.min_cell` are suppressed, as every outcome group is).
"""

import datetime

from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from registry.models import EnteredBy, EproLink, ReminderLog, Visit, VisitStatus, timepoint_sort_key

from .. import access, deid
from ..dates import site_days
from .links import grace_days, link_status, may_contact


def _live_link(today: datetime.date):
    # Links still working on the site's day `today` (window end plus the grace days).
    return EproLink.objects.filter(visit_id=OuterRef("pk"), revoked_at__isnull=True,
                                   submitted_at__isnull=True,
                                   visit__window_end__gte=today - datetime.timedelta(days=grace_days()))


def pending_invitations_for(user, *, now: datetime.datetime | None = None) -> int:
    """Visits at `user`'s sites waiting for the patient's answers through a link, each
    site by its own calendar day (one query per distinct day, usually one)."""
    now = now or timezone.now()
    visits = access.visible(Visit.objects.filter(status=VisitStatus.SCHEDULED), user)
    sites = access.sites_for(user).values_list("pk", "timezone")
    return sum(visits.filter(patient__site_id__in=site_ids)
               .filter(may_contact("patient__", on=today)).filter(Exists(_live_link(today))).count()
               for today, site_ids in site_days(sites, now).items())


def links_of_patient(patient, *, now: datetime.datetime | None = None) -> list[dict]:
    """The patient page's list: each link with its visit, channel, status and any
    conflict (answers submitted after the nurse entered the visit), newest first."""
    links = EproLink.objects.filter(visit__patient=patient).select_related("visit__patient__site")
    return [{"link": link, "visit": link.visit, "status": link_status(link, now=now),
             "conflict": link.conflict} for link in links.order_by("-created_at")[:50]]


def digest_summary(*, site, day: datetime.date) -> dict:
    """For the site's digest: links out and opened (still working), and what came in or
    closed since the day before (submitted, conflicts, expired)."""
    since = day - datetime.timedelta(days=1)
    since_start = datetime.datetime.combine(since, datetime.time(0), tzinfo=site.tz)  # the site's day
    links = list(EproLink.objects.filter(visit__patient__site=site)
                 .filter(Q(submitted_at__isnull=True, revoked_at__isnull=True)
                         | Q(submitted_at__gte=since_start))
                 .select_related("visit__patient__site"))
    counts = {"out": 0, "opened": 0, "submitted": 0, "conflict": 0, "expired": 0}
    conflicts = []
    for link in links:
        status = link_status(link)
        if status in ("out", "opened", "submitted", "conflict"):
            counts[status] += 1
        elif status == "expired" and link.visit.window_end and \
                link.visit.window_end + datetime.timedelta(days=grace_days()) >= since:
            counts["expired"] += 1
        if status == "conflict":
            conflicts.append(link.visit)
    counts["conflicts"] = conflicts
    counts["any"] = any(counts[k] for k in ("out", "opened", "submitted", "conflict", "expired"))
    return counts


def response_rates(user) -> list[dict]:
    """Per site and timepoint: visits given a link (`invited`), answered by the patient
    (`answered`), and the rate in %; `suppressed` where fewer than the user's min cell."""
    # IN (not a correlated EXISTS): PostgreSQL hashes each list once instead of probing both
    # tables for every visit of the registry (1.0 s of 1.4 s at 100,000 patients, issue 21).
    e_mailed = ReminderLog.objects.filter(kind=ReminderLog.Kind.EPRO_INVITATION,
                                          status=ReminderLog.Status.SENT).values("visit_id")
    handed = EproLink.objects.values("visit_id")
    visits = access.visible(Visit.objects.all(), user).filter(Q(pk__in=e_mailed) | Q(pk__in=handed))
    rows = (visits.values("patient__site__code", "timepoint")
            .annotate(invited=Count("pk"),
                      answered=Count("pk", filter=Q(entered_by=EnteredBy.PATIENT,
                                                    status=VisitStatus.COMPLETED)))
            .order_by())
    smallest = deid.min_cell(user)
    out = []
    for row in rows:
        suppressed = row["invited"] < smallest
        out.append({"site": row["patient__site__code"], "timepoint": row["timepoint"],
                    "invited": None if suppressed else row["invited"],
                    "answered": None if suppressed else row["answered"],
                    "rate": None if suppressed else round(100.0 * row["answered"] / row["invited"], 1),
                    "suppressed": suppressed})
    return sorted(out, key=lambda r: (r["site"], timepoint_sort_key(r["timepoint"])))
