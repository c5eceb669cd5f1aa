"""manage.py outcomes: the cohort outcome summary as a table and a results paragraph (or JSON)."""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from registry.models import Patient
from registry.services import outcomes


def _table(summary: dict) -> str:
    rows = outcomes.outcome_table(summary)
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


class Command(BaseCommand):
    help = ("Print the outcome summary of a cohort (responders, NRS, Wilcoxon, satisfaction, adverse "
            "events, explant-free survival) and a results paragraph. Without --user the whole "
            "registry is analysed (the operator of the server sees all data anyway).")

    def add_arguments(self, parser):
        parser.add_argument("--therapy", help="Comma-separated therapy codes (SCS, DRG, PNS, CES).")
        parser.add_argument("--etiology", help="Comma-separated etiology codes.")
        parser.add_argument("--diagnosis", help="Comma-separated diagnosis codes.")
        parser.add_argument("--site", help="Comma-separated site codes.")
        parser.add_argument("--implant-year-from", dest="implant_year_from")
        parser.add_argument("--implant-year-to", dest="implant_year_to")
        parser.add_argument("--pain-site", dest="pain_site",
                            help="Use pain scores of this pain site (e.g. phantom_limb).")
        parser.add_argument("--recall", help="Recall period of the pain-site scores (default avg_7d).")
        parser.add_argument("--timepoint", default="last", help="'last' (default) or m<N>, e.g. m12.")
        parser.add_argument("--threshold", default="50", help="Responder threshold in %% (default 50).")
        parser.add_argument("--group-by", dest="group_by", help="therapy, etiology or site.")
        parser.add_argument("--user", help="Analyse only what this user may see (access rule).")
        parser.add_argument("--json", action="store_true", help="Print JSON instead of text.")
        parser.add_argument("--proms", action="store_true",
                            help="PROM outcomes instead (change from baseline, MIC, holistic responder).")
        parser.add_argument("--value-set", dest="value_set",
                            help="EQ-5D-5L value set for --proms (NL, ENG, US, DE, BE; default: the "
                                 "sites' country).")

    def handle(self, *args, **options):
        params = {key: options[key] for key in outcomes.PARAMS if options.get(key) not in (None, "")}
        try:
            query = outcomes.outcome_query_clean(**params)
        except outcomes.OutcomeQueryError as error:
            raise CommandError(f"--{error.param.replace('_', '-')} {error.value!r}: {error}") from None
        scope = {"patients": Patient.objects.all()}
        if options.get("user"):
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"--user {options['user']!r}: no such user.")
            scope = {"user": user}
        if options.get("proms"):
            return self._proms(query, scope, options)
        try:
            result = outcomes.outcome_summary(query=query, **scope)
        except outcomes.OutcomeQueryError as error:
            raise CommandError(f"--{error.param.replace('_', '-')} {error.value!r}: {error}") from None
        if options["json"]:
            self.stdout.write(json.dumps({"query": query.as_dict(), **result}, indent=2))
            return
        overall = result["overall"] if query.group_by else result
        self.stdout.write(_table(overall))
        self.stdout.write("")
        self.stdout.write(outcomes.outcome_paragraph(overall, timepoint=query.timepoint,
                                                     threshold=query.threshold))
        for group in result.get("groups", []):
            self.stdout.write("")
            self.stdout.write(f"== {query.group_by} {group['group']} ==")
            self.stdout.write(_table(group))
            self.stdout.write(outcomes.outcome_paragraph(group, timepoint=query.timepoint,
                                                         threshold=query.threshold))

    def _proms(self, query, scope, options):
        from registry.services.proms.outcomes import prom_outcomes

        try:
            result = prom_outcomes(query=query, value_set=options.get("value_set"), **scope)
        except outcomes.OutcomeQueryError as error:
            raise CommandError(f"--{error.param.replace('_', '-')} {error.value!r}: {error}") from None
        except ValueError as error:  # the value set (the query is already cleaned)
            raise CommandError(f"--value-set {options.get('value_set')!r}: {error}") from None
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write(result["value_set_note"])
        for row in outcomes.prom_table(result):
            if row["suppressed"]:
                self.stdout.write(f"{row['label']}: suppressed")
                continue
            self.stdout.write(f"{row['label']}: n={row['n']} baseline {row['baseline']} follow-up "
                              f"{row['followup']} change {row['change']} (Wilcoxon p {row['wilcoxon_p']}, "
                              f"paired t p {row['ttest_p']}); MIC {row['mic']}")
        self.stdout.write("")
        self.stdout.write(outcomes.prom_paragraph(result))
