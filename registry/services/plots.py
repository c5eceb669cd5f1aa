"""Outcome plots as inline SVG, drawn with matplotlib (Agg, no pyplot).

Each function takes plain numbers (from services.outcomes) and returns an
`<svg>` element as a string, ready to be placed in a page: no files, no CDN,
no JavaScript. Figures are built with `matplotlib.figure.Figure` directly, so
no global pyplot state is shared between requests or threads.
"""

import io
from html import escape

import matplotlib

matplotlib.use("Agg")

from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from registry.models import AeCategory  # noqa: E402

BLUE = "#3b6fa0"
ORANGE = "#c8702a"
GREY = "#8a8a8a"
RC = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, searchable
    "svg.hashsalt": "registry-outcomes",  # stable element ids between renders
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _figure(width=5.2, height=3.2) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def svg_of(fig: Figure, *, label: str) -> str:
    """The figure as an inline `<svg>` element with an accessible label."""
    buffer = io.StringIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    return text.replace(
        "<svg ", f'<svg role="img" class="outcome-plot" aria-label="{escape(label)}" ', 1
    )


def _empty(ax, message="No data for this cohort"):
    ax.text(0.5, 0.5, message, ha="center", va="center", color=GREY, transform=ax.transAxes)
    ax.set_axis_off()


def nrs_pairs_svg(pairs: list[tuple[float, float]], *, total: int | None = None,
                  means: tuple[float, float] | None = None) -> str:
    """Slope chart: each patient's NRS at baseline and at follow-up, with the
    means (`means` = the whole cohort's, when `pairs` is a sample of it)."""
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot()
        if not pairs:
            _empty(ax)
        else:
            alpha = 0.5 if len(pairs) <= 50 else max(0.05, 25 / len(pairs))
            segments = [[(0, before), (1, after)] for before, after in pairs]
            colours = [BLUE if after < before else ORANGE for before, after in pairs]
            ax.add_collection(LineCollection(segments, colors=colours, alpha=alpha, linewidths=1))
            mean_before, mean_after = means or (sum(b for b, _ in pairs) / len(pairs),
                                                sum(a for _, a in pairs) / len(pairs))
            ax.plot([0, 1], [mean_before, mean_after], color="black", linewidth=2.5,
                    marker="s", label=f"mean ({mean_before:.1f} → {mean_after:.1f})")
            ax.set_xticks([0, 1], ["Baseline", "Follow-up"])
            ax.set_xlim(-0.25, 1.25)
            ax.set_ylim(-0.5, 10.5)
            ax.set_ylabel("NRS (0-10)")
            ax.legend(loc="upper right", frameon=False)
            shown = f"{len(pairs)} of {total} patients" if total and total > len(pairs) else \
                f"{len(pairs)} patient{'s' if len(pairs) != 1 else ''}"
            ax.set_title(f"NRS per patient ({shown})")
        return svg_of(fig, label="NRS at baseline and at follow-up per patient")


def responder_rate_svg(groups: list[dict]) -> str:
    """Responder rate per group (e.g. therapy) with its 95 % Wilson interval."""
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot()
        rows = [g for g in groups if g.get("responder_rate") is not None]
        if not rows:
            _empty(ax)
        else:
            xs = range(len(rows))
            rates = [g["responder_rate"] * 100 for g in rows]
            low = [r - g["responder_rate_ci95"][0] * 100 for r, g in zip(rates, rows, strict=True)]
            high = [g["responder_rate_ci95"][1] * 100 - r for r, g in zip(rates, rows, strict=True)]
            ax.bar(xs, rates, color=BLUE, width=0.6)
            ax.errorbar(xs, rates, yerr=[low, high], fmt="none", ecolor="black", capsize=4)
            labels = [f"{g['group']}\n{g['responders']}/{g['n_responder_evaluable']}" for g in rows]
            ax.set_xticks(list(xs), labels)
            ax.set_ylim(0, 100)
            ax.set_ylabel("Responders (%) with 95 % CI")
            ax.set_title("Responder rate by therapy")
        return svg_of(fig, label="Responder rate by therapy with 95 % Wilson intervals")


def km_svg(years: list[float], survival: list[float], *, explants: int = 0, n: int = 0) -> str:
    """Kaplan-Meier step curve of explant-free survival."""
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot()
        if not years:
            _empty(ax)
        else:
            ax.step(years, [s * 100 for s in survival], where="post", color=BLUE, linewidth=1.8)
            ax.set_ylim(0, 102)
            ax.set_xlim(0, max(years) * 1.02 or 1)
            ax.set_xlabel("Years since implant")
            ax.set_ylabel("Explant-free (%)")
            ax.set_title(f"Explant-free survival (Kaplan-Meier; {explants} explants, n = {n})")
        return svg_of(fig, label="Kaplan-Meier explant-free survival")


def ae_category_svg(by_category: dict, *, n_patients: int = 0) -> str:
    """Patients with an adverse event, per category (horizontal bars)."""
    labels = dict(AeCategory.choices)
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot()
        if not by_category:
            _empty(ax, "No adverse events in this cohort")
        else:
            items = sorted(by_category.items(), key=lambda item: item[1]["patients"])
            ax.barh([labels.get(code, code) for code, _ in items],
                    [row["patients"] for _, row in items], color=ORANGE)
            ax.set_xlabel("Patients" + (f" (of {n_patients})" if n_patients else ""))
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_title("Adverse events by category")
        return svg_of(fig, label="Adverse events by category")


def prom_mic_svg(scores: list[dict], holistic: dict | None = None) -> str:
    """Share of patients reaching the minimal important change per PROM score (95 % Wilson
    interval), and the holistic responder rate, from services.proms.outcomes."""
    rows = [s for s in scores if s.get("mic_rate") is not None]
    bars = [(f"{s['label']} (n={s['n_paired']})", s["mic_rate"], s["mic_rate_ci95"], BLUE) for s in rows]
    if holistic and holistic.get("rate") is not None:
        bars.append((f"Holistic responder (n={holistic['n_evaluable']})", holistic["rate"],
                     holistic["rate_ci95"], ORANGE))
    with matplotlib.rc_context(RC):
        fig = _figure(height=3.6)
        ax = fig.add_subplot()
        if not bars:
            _empty(ax, "No PROM pairs in this cohort")
        else:
            ys = range(len(bars))
            rates = [b[1] * 100 for b in bars]
            low = [r - b[2][0] * 100 for r, b in zip(rates, bars, strict=True)]
            high = [b[2][1] * 100 - r for r, b in zip(rates, bars, strict=True)]
            ax.barh(list(ys), rates, color=[b[3] for b in bars], height=0.6)
            ax.errorbar(rates, list(ys), xerr=[low, high], fmt="none", ecolor="black", capsize=3)
            ax.set_yticks(list(ys), [b[0] for b in bars])
            ax.set_xlim(0, 100)
            ax.set_xlabel("Patients reaching the minimal important change (%), 95 % CI")
            ax.set_title("PROMs: minimal important change")
        return svg_of(fig, label="Share of patients reaching the minimal important change per PROM score")


def _completeness_colours(n: int) -> list:
    # Done in the outcome blue; the reasons in a qualitative palette; "no reason" orange,
    # the one to chase.
    palette = matplotlib.colormaps["Pastel1"].colors + matplotlib.colormaps["Pastel2"].colors
    return [BLUE, *palette[:n - 2], ORANGE]


def completeness_svg(totals: list[dict], reasons: list[tuple[str, str]]) -> str:
    """Per instrument, the expected values as a 100 % bar: done, then missing by reason
    (`totals` from services.completeness.completeness_totals; `reasons`: code, label)."""
    with matplotlib.rc_context(RC):
        fig = _figure(width=6.4, height=max(2.4, 0.42 * len(totals) + 1.4))
        ax = fig.add_subplot()
        rows = [t for t in totals if t["expected"]]
        if not rows:
            _empty(ax, "Nothing expected yet")
        else:
            labels = [f"{t['label']} (n={t['expected']})" for t in reversed(rows)]
            left = [0.0] * len(rows)
            parts = [("done", "Done")] + list(reasons)
            for (code, label), colour in zip(parts, _completeness_colours(len(parts)), strict=True):
                share = [100 * (t["done"] if code == "done" else t["missing"][code]) / t["expected"]
                         for t in reversed(rows)]
                if not any(share):
                    continue
                ax.barh(labels, share, left=left, color=colour, label=label, height=0.6)
                left = [a + b for a, b in zip(left, share, strict=True)]
            ax.set_xlim(0, 100)
            ax.set_xlabel("Expected values (%)")
            # Outside the axes, below, inside the figure (constrained layout makes room).
            fig.legend(loc="outside lower center", ncol=3, frameon=False, fontsize=8)
            ax.set_title("Completeness by instrument")
        return svg_of(fig, label="Completeness by instrument: done and missing by reason")


def _palette(n: int) -> list[str]:
    colours = [BLUE, ORANGE, "#4f9a58", "#9b59b6", "#b8860b", "#2f8f9d", "#c0392b", "#7f8c8d"]
    return [colours[i % len(colours)] for i in range(n)]


def explant_incidence_svg(incidence: dict) -> str:
    """Cumulative incidence of explant per cause (Aalen-Johansen), death dashed (competing)."""
    causes = incidence.get("causes") or []
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot()
        if not causes:
            _empty(ax, "No explant or death in this cohort")
        else:
            longest = 0.0
            for colour, cause in zip(_palette(len(causes)), causes, strict=True):
                curve = cause["curve"]
                longest = max(longest, max(curve["years"]))
                ax.step(curve["years"], [v * 100 for v in curve["values"]], where="post",
                        color=GREY if cause["competing"] else colour, linewidth=1.6,
                        linestyle="--" if cause["competing"] else "-",
                        label=f"{cause['label']} ({cause['events']})")
            ax.set_xlim(0, longest * 1.02 or 1)
            ax.set_ylim(0, None)
            ax.set_xlabel("Years since implant")
            ax.set_ylabel("Cumulative incidence (%)")
            ax.set_title(f"Explant by cause (Aalen-Johansen; death competing; n = "
                         f"{incidence.get('n_patients')})")
            ax.legend(fontsize=7, frameon=False)
        return svg_of(fig, label="Cumulative incidence of explant per cause, death a competing event")


def ipg_longevity_svg(longevity: dict) -> str:
    """Kaplan-Meier IPG longevity per model (suppressed models left out)."""
    models = [m for m in longevity.get("models") or [] if m.get("curve")]
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot()
        if not models:
            _empty(ax, "No IPG recorded in this cohort")
        else:
            longest = 0.0
            for colour, model in zip(_palette(len(models)), models, strict=True):
                curve = model["curve"]
                longest = max(longest, max(curve["years"]))
                ax.step(curve["years"], [v * 100 for v in curve["values"]], where="post",
                        color=colour, linewidth=1.6,
                        label=f"{model['model']} ({model['depletions']}/{model['n_ipgs']})")
            ax.set_xlim(0, longest * 1.02 or 1)
            ax.set_ylim(0, 102)
            ax.set_xlabel("Years since IPG implant")
            ax.set_ylabel("Battery not depleted (%)")
            ax.set_title("IPG longevity per model (Kaplan-Meier)")
            ax.legend(fontsize=7, frameon=False)
        return svg_of(fig, label="Kaplan-Meier IPG longevity per model")


def attrition_svg(attrition: dict) -> str:
    """Stacked bars per timepoint: done, missed, open, ended by disposition status."""
    rows = [r for r in attrition.get("timepoints") or [] if r.get("due")]
    with matplotlib.rc_context(RC):
        fig = _figure(width=6.4)
        ax = fig.add_subplot()
        if not rows:
            _empty(ax, "No timepoint due in this cohort")
        else:
            xs = list(range(len(rows)))
            parts = [("Visit done", lambda r: r["done"], "#4f9a58"),
                     ("Missed", lambda r: r["missed_total"], ORANGE),
                     ("Open / not applicable", lambda r: (r["open"] or 0) + (r["not_applicable"] or 0),
                      "#d5d5d5")]
            statuses = attrition.get("statuses") or {}
            greys = ["#555555", "#777777", "#999999", "#b0b0b0", "#c8c8c8"]
            for (status, label), grey in zip(statuses.items(), greys, strict=False):
                parts.append((label, lambda r, s=status: r["ended"].get(s), grey))
            bottom = [0.0] * len(rows)
            for label, value, colour in parts:
                heights = [float(value(r) or 0) for r in rows]  # a withheld cell draws as 0
                ax.bar(xs, heights, bottom=bottom, color=colour, width=0.7, label=label)
                bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
            ax.set_xticks(xs, [r["timepoint"] for r in rows])
            ax.set_ylabel("Patients due")
            ax.set_title(f"Attrition per timepoint (enrolled {attrition.get('enrolled')})")
            ax.legend(fontsize=7, frameon=False, ncols=2)
        return svg_of(fig, label="Attrition waterfall per follow-up timepoint")


# --- The outcome dashboard's plots, listed once (admin view, benchmarks) -----------------

def report_svgs(report: dict, proms: dict | None = None) -> list[str]:
    """The plots of an outcome report (`outcomes.outcome_report`): NRS pairs, responder rate,
    explant-free survival, adverse events by category; and PROM MIC where `proms` is given."""
    summary = report["summary"]
    means = (summary["nrs_baseline_mean"], summary["nrs_followup_mean"]) if summary["n_paired"] else None
    svgs = [
        nrs_pairs_svg(report["pairs"], total=summary["n_paired"], means=means),
        responder_rate_svg(report["by_therapy"]),
        km_svg(report["km"]["years"], report["km"]["survival"], explants=summary["explants"],
               n=summary["n_patients"]),
        ae_category_svg(summary["ae_by_category"], n_patients=summary["n_patients"]),
    ]
    if proms:
        svgs.append(prom_mic_svg(proms["overall"]["scores"], proms["overall"]["holistic"]))
    return svgs


def survival_svgs(incidence: dict, longevity: dict, attrition: dict) -> list[str]:
    """Explant incidence per cause, IPG longevity and the attrition waterfall."""
    return [explant_incidence_svg(incidence), ipg_longevity_svg(longevity), attrition_svg(attrition)]
