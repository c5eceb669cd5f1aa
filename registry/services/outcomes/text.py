"""Outcomes as text: the results paragraph and the summary table."""

from __future__ import annotations

from django.conf import settings

from registry.models import AeCategory, timepoint_label

from .query import LAST

# --- text ---------------------------------------------------------------------


def suppressed_text() -> str:
    return (f"Fewer than {settings.REGISTRY_MIN_CELL} patients: figures suppressed "
            f"(small groups could identify a patient).")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f} %"


def _p_text(p: float | None) -> str:
    if p is None:
        return "p not computable"
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return "p < 0.01"
    return f"p = {p:.2f}"


def _ms(mean, sd) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.1f} ± {sd:.1f}" if sd is not None else f"{mean:.1f}"


def _number(n: int) -> str:
    words = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    return words[n] if 0 <= n < len(words) else str(n)


REASON_WORDS = {"not_asked": "not asked", "declined": "declined", "unknown": "unknown",
                "not_applicable": "not applicable", "lost_to_follow_up": "lost to follow-up",
                "none": "no reason recorded"}


def reasons_text(counts: dict | None) -> str:
    """": 2 lost to follow-up, 1 no reason recorded" (empty without counts)."""
    if not counts:
        return ""
    shown = [f"{n} {REASON_WORDS.get(code, code)}" for code, n in counts.items() if n]
    return f": {', '.join(shown)}" if shown else ""


def outcome_paragraph(summary: dict, *, timepoint: str = LAST, threshold: float = 50) -> str:
    """A results paragraph in the style of the first seed paper, from a summary."""
    s = summary
    if s.get("suppressed"):
        return f"This cohort is suppressed. {suppressed_text()}"
    n = s["n_patients"]
    if n == 0:
        return "No patients match this cohort."
    parts = []
    age = ""
    if s["age_mean"] is not None:
        sd = f" ± {s['age_sd']:.0f}" if s["age_sd"] is not None else ""
        age = f", {s['age_mean']:.0f}{sd} years"
    parts.append(f"{n} patient{'s' if n != 1 else ''} (M = {s['male']}{age}) "
                 f"{'were' if n != 1 else 'was'} included.")
    excluded = []
    why = s.get("excluded_by_reason") or {}
    if s["excluded_no_baseline"]:
        excluded.append(f"{s['excluded_no_baseline']} without a baseline NRS"
                        f"{reasons_text(why.get('no_baseline'))}")
    if s["excluded_no_followup"]:
        excluded.append(f"{s['excluded_no_followup']} without a follow-up NRS"
                        f"{reasons_text(why.get('no_followup'))}")
    if excluded:
        parts.append(f"{n - s['n_paired']} were excluded from the NRS analysis ({', '.join(excluded)}).")
    if s["excluded_zero_baseline"]:
        parts.append(f"{s['excluded_zero_baseline']} with a baseline NRS of 0 could not be classified "
                     "as responder or not.")
    if s["n_paired"]:
        if timepoint == LAST:
            span = f"{s['followup_years_min']:.0f}–{s['followup_years_max']:.0f} years"
            where = f"At last follow-up ({span})"
        else:
            where = f"At the {timepoint_label(timepoint)} follow-up"
        k, m = s["responders"], s["n_responder_evaluable"]
        ci = s["responder_rate_ci95"]
        ci_text = f"; 95 % CI {ci[0] * 100:.0f}–{ci[1] * 100:.0f} %" if ci else ""
        threshold_text = f"{threshold:g}"
        # The reduction of the means is undefined when every paired baseline is 0.
        reduction = s["nrs_reduction_of_means_pct"]
        change = (f"an average decrease in NRS of {reduction:.0f} %" if reduction is not None
                  else "no computable average decrease in NRS")
        parts.append(
            f"{where}, {_pct(s['responder_rate'])} ({k}/{m}) of patients were responders "
            f"(≥ {threshold_text} % NRS reduction{ci_text}) with {change} "
            f"({_ms(s['nrs_baseline_mean'], s['nrs_baseline_sd'])} "
            f"to {_ms(s['nrs_followup_mean'], s['nrs_followup_sd'])}) ({_p_text(s['wilcoxon_p'])}, "
            "Wilcoxon signed-rank)."
        )
    if s["n_satisfaction"]:
        if s["satisfied"] == s["n_satisfaction"]:
            parts.append(f"All patients with a rating ({s['satisfied']}/{s['n_satisfaction']}) were "
                         "satisfied with their implant.")
        else:
            parts.append(f"{_pct(s['satisfied'] / s['n_satisfaction'])} ({s['satisfied']}/"
                         f"{s['n_satisfaction']}) of patients were satisfied with their implant.")
    ae = s["patients_with_ae"]
    if ae == 0:
        parts.append("No complications were recorded.")
    else:
        labels = dict(AeCategory.choices)
        kinds = ", ".join(
            labels.get(code, code).lower() + (f" ({row['patients']})" if ae > 1 else "")
            for code, row in s["ae_by_category"].items()
        )
        subject = "A complication was present in one patient" if ae == 1 else \
            f"Complications were present in {_number(ae)} patients"
        parts.append(f"{subject} ({_pct(s['ae_rate'])}, {ae}/{n}): {kinds}.")
    if s["explants"]:
        parts.append(f"{s['explants']} implant{'s were' if s['explants'] != 1 else ' was'} explanted.")
    return " ".join(parts)


TABLE_ROWS = [
    ("n_patients", "Patients", "{:d}"),
    ("male", "Men", "{:d}"),
    ("withdrawn", "Withdrawn", "{:d}"),
    ("age_mean", "Age at implant, mean", "{:.1f}"),
    ("age_sd", "Age at implant, SD", "{:.1f}"),
    ("excluded_no_baseline", "Excluded: no baseline score", "{:d}"),
    ("excluded_no_followup", "Excluded: no follow-up score", "{:d}"),
    ("excluded_zero_baseline", "Not classifiable: baseline 0", "{:d}"),
    ("n_paired", "Paired baseline/follow-up", "{:d}"),
    ("followup_years_median", "Follow-up years, median", "{:.1f}"),
    ("followup_years_min", "Follow-up years, min", "{:.1f}"),
    ("followup_years_max", "Follow-up years, max", "{:.1f}"),
    ("nrs_baseline_mean", "NRS baseline, mean", "{:.2f}"),
    ("nrs_baseline_sd", "NRS baseline, SD", "{:.2f}"),
    ("nrs_followup_mean", "NRS follow-up, mean", "{:.2f}"),
    ("nrs_followup_sd", "NRS follow-up, SD", "{:.2f}"),
    ("nrs_reduction_pct_mean", "NRS reduction %, mean of patients", "{:.1f}"),
    ("nrs_reduction_of_means_pct", "NRS reduction %, of the means", "{:.1f}"),
    ("responders", "Responders", "{:d}"),
    ("n_responder_evaluable", "Responder denominator", "{:d}"),
    ("responder_rate", "Responder rate", "{:.1%}"),
    ("wilcoxon_p", "Wilcoxon p", "{:.2g}"),
    ("satisfied", "Satisfied (4-5)", "{:d}"),
    ("n_satisfaction", "Satisfaction rated", "{:d}"),
    ("patients_with_ae", "Patients with an adverse event", "{:d}"),
    ("ae_rate", "Adverse event rate", "{:.1%}"),
    ("explants", "Explants", "{:d}"),
]


def outcome_table(summary: dict) -> list[tuple[str, str]]:
    """The summary as (label, formatted value) rows, for the dashboard and the command."""
    if summary.get("suppressed"):
        return [("Suppressed", suppressed_text())]
    rows = []
    labels = dict(AeCategory.choices)
    why = summary.get("excluded_by_reason") or {}
    for key, label, fmt in TABLE_ROWS:
        value = summary[key]
        rows.append((label, "-" if value is None else fmt.format(value)))
        group = {"excluded_no_baseline": "no_baseline", "excluded_no_followup": "no_followup"}.get(key)
        for code, n in (why.get(group) or {}).items() if group else ():
            if n:
                rows.append((f"{label}, {REASON_WORDS.get(code, code)}", f"{n:d}"))
        if key == "responder_rate" and summary["responder_rate_ci95"]:
            low, high = summary["responder_rate_ci95"]
            rows.append(("Responder rate, 95 % CI (Wilson)", f"{low:.1%} - {high:.1%}"))
    for years, value in summary["explant_free"].items():
        at_risk = summary["explant_free_at_risk"][years]
        shown = "-" if value is None else f"{value:.1%}"
        rows.append((f"Explant-free at {years[:-1]} year(s), Kaplan-Meier", f"{shown} (at risk {at_risk})"))
    for code, row in summary["ae_by_category"].items():
        rows.append((f"AE: {labels.get(code, code)}",
                     f"{row['patients']} patient(s), {row['events']} event(s)"))
    return rows


# --- PROMs (services.proms.outcomes) ---------------------------------------------------


def _signed(value: float | None, decimals: int = 1) -> str:
    return "n/a" if value is None else f"{value:+.{decimals}f}"


def _ms_d(mean, sd, decimals: int) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.{decimals}f} ± {sd:.{decimals}f}" if sd is not None else f"{mean:.{decimals}f}"


def prom_paragraph(result: dict) -> str:
    """The PROM sentences of the results paragraph, from `prom_outcomes(...)`: per score with
    pairs, mean ± SD before and after, the change and its paired test, the share reaching the
    minimal important change; then the holistic responders, with the value set stated."""
    cell = result["overall"]
    if cell.get("suppressed"):
        return f"PROMs: suppressed. {suppressed_text()}"
    scored = [s for s in cell["scores"] if s.get("n_paired")]
    if not scored:
        return "No patient has a PROM score at baseline and at follow-up."
    decimals = {"eq5d5l_index": 3}
    parts = []
    for s in scored:
        if s.get("suppressed"):
            continue
        d = decimals.get(s["score"], 1)
        text = (f"{s['label']}: {_ms_d(s['baseline_mean'], s['baseline_sd'], d)} at baseline and "
                f"{_ms_d(s['followup_mean'], s['followup_sd'], d)} at follow-up (change "
                f"{_signed(s['change_mean'], d)}, n = {s['n_paired']}; {_p_text(s['wilcoxon_p'])}, Wilcoxon "
                f"signed-rank)")
        if s["mic"] is not None:
            unit = " %" if s["mic_relative"] else (" points" if s["mic"] >= 1 else "")
            text += (f"; {_pct(s['mic_rate'])} ({s['n_mic']}/{s['n_paired']}) reached the minimal "
                     f"important change ({s['mic']:g}{unit})")
        parts.append(text + ".")
    h = cell["holistic"]
    if h.get("suppressed"):
        parts.append(f"Holistic responders: suppressed. {suppressed_text()}")
    elif h["n_evaluable"]:
        parts.append(f"{_pct(h['rate'])} ({h['responders']}/{h['n_evaluable']}) of patients with at least "
                     f"one domain impaired at baseline were holistic responders (minimal important change "
                     f"in every impaired domain; Levy et al. 2023).")
    parts.append(f"EQ-5D-5L index by the value set {result['value_set']}.")
    return " ".join(parts)


PROM_TABLE_COLUMNS = ("n_paired", "baseline_mean", "followup_mean", "change_mean", "change_sd",
                      "wilcoxon_p", "ttest_p", "n_mic", "mic_rate")


def prom_table(result: dict) -> list[dict]:
    """One row per score of the overall cell, formatted for the dashboard."""
    rows = []
    for s in result["overall"].get("scores", []):
        if s.get("suppressed"):
            rows.append({"label": s["label"], "suppressed": True})
            continue
        fmt = "{:.3f}" if s["score"] == "eq5d5l_index" else "{:.1f}"
        rows.append({
            "label": s["label"], "suppressed": False, "n": s["n_paired"] or 0,
            "baseline": "-" if s["baseline_mean"] is None else fmt.format(s["baseline_mean"]),
            "followup": "-" if s["followup_mean"] is None else fmt.format(s["followup_mean"]),
            "change": "-" if s["change_mean"] is None else fmt.format(s["change_mean"])
            + ("" if s["change_sd"] is None else " ± " + fmt.format(s["change_sd"])),
            "wilcoxon_p": "-" if s["wilcoxon_p"] is None else f"{s['wilcoxon_p']:.2g}",
            "ttest_p": "-" if s["ttest_p"] is None else f"{s['ttest_p']:.2g}",
            "mic": "-" if s["mic_rate"] is None else f"{s['n_mic']}/{s['n_paired']} ({s['mic_rate']:.0%})",
        })
    return rows
