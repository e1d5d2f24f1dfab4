"""The report's "Performance and calibration" section and its reliability diagram.

``performance_section(section, run)`` reads ``run.fairness.performance`` (written by
:mod:`auditkit.audits.fairness.performance`): one table overall and per group (records, prevalence, confusion
counts, accuracy, AUROC, calibration error, each with its interval), the decision threshold in plain words and
the reliability diagram ``figures["reliability"]``. ``reliability_figure(perf)`` draws that diagram (called by
:func:`auditkit.report.figures.render_figures`): all records on the left, the groups of the first attribute
on the right. Rows marked ``suppressed``, and rows with fewer records than the minimum group size, are shown as
"suppressed" with no figure of theirs; a statistic withheld for too small a denominator is shown as
"too few" with that denominator. Matplotlib is imported by the figure function only, so that importing the
report package stays light.
"""

from __future__ import annotations

from ..audits.fairness.findings import Performance, PerfRow
from ..rundoc import RunDocument
from . import fmt
from .blocks import Cell, Figure, Paragraph, Section, Table

#: series colours of the reliability diagram, named as the caption names them (Okabe-Ito, as figures.py;
#: a test keeps the values equal to its constants)
OVERALL_COLOUR = ("black", "#000000")
GROUP_COLOURS = (("blue", "#0072B2"), ("orange", "#E69F00"), ("green", "#009E73"), ("purple", "#CC79A7"),
                 ("vermilion", "#D55E00"), ("sky blue", "#56B4E9"))
SUPPRESSED = "suppressed"
COLUMNS = ["Group", "Records", "Prevalence", "TP", "FP", "TN", "FN", "Accuracy", "AUROC", "Calibration error"]
WIDTH = 6.6  # inches: the text width of an A4 page with the report's margins (as figures.WIDTH)


def hidden(row: PerfRow, minimum: int) -> bool:
    """A row the report does not show: marked suppressed, or fewer records than the minimum group size."""
    return row.suppressed or row.n is None or row.n < minimum


def shown_groups(perf: Performance) -> tuple[str, list[PerfRow]] | None:
    """The first attribute and its rows that the reliability diagram draws (shown, with reliability bins)."""
    if not perf.groups:
        return None
    first = perf.groups[0]
    return first.attribute, [r for r in first.rows if not hidden(r, perf.min_n) and r.reliability]


def _too_few(row: PerfRow, name: str, what: str) -> Cell:
    return Cell("too few", "muted", sub=f"{fmt.count(row.insufficient[name])} {what}")


def _value(row: PerfRow, name: str, text: str, ci: str, what: str) -> Cell:
    if name in row.insufficient:
        return _too_few(row, name, what)
    return Cell(text, "num", sub=ci)


def _row(row: PerfRow, perf: Performance, label: str) -> list[Cell]:
    if hidden(row, perf.min_n):
        return [Cell(label), Cell(SUPPRESSED, "muted", colspan=len(COLUMNS) - 1)]
    c = perf.confidence
    prev, acc, auc, ece = row.prevalence_ci, row.accuracy_ci, row.auroc_ci, row.ece_ci
    return [Cell(label), Cell(fmt.count(row.n), "num"),
            _value(row, "prevalence", fmt.pct(row.prevalence),
                   fmt.interval(*prev, confidence=c, as_pct=True) if prev else "", "records"),
            *(Cell(fmt.count(getattr(row, k)), "num") for k in ("tp", "fp", "tn", "fn")),
            _value(row, "accuracy", fmt.pct(row.accuracy),
                   fmt.interval(*acc, confidence=c, as_pct=True) if acc else "", "records"),
            _value(row, "auroc", fmt.num(row.auroc), fmt.interval(*auc, confidence=c) if auc else "",
                   "in the smaller class"),
            _value(row, "ece", fmt.pp(row.ece), fmt.interval(*ece, confidence=c, as_pp=True) if ece else "",
                   "records")]


def threshold_text(perf: Performance, fav: str) -> str:
    """The decision rule in plain words."""
    if perf.threshold is not None:
        return (f"Decision threshold: a record is predicted “{fav}” when the model's probability of “{fav}” is above "
                f"{fmt.num(perf.threshold)} (the more probable of the two classes). The counts below are those "
                f"decisions; AUROC and calibration use the probability itself.")
    return (f"Decision rule: the model has {perf.n_classes} classes and predicts the most probable one. “{fav}” is "
            f"read against all other classes together (one-vs-rest): a record counts as predicted “{fav}” when "
            f"“{fav}” is its most probable class, and AUROC and calibration use the probability of “{fav}”; there "
            f"is no single probability threshold.")


def caption(perf: Performance, fav: str) -> str:
    """The reliability diagram's caption, naming each series by the colour it is drawn in."""
    text = (f"Reliability diagram: each point is one of {perf.bins} equal-width bins of the predicted probability "
            f"of “{fav}”, placed at the bin's mean predicted probability (across) and the share of its records that "
            f"truly had “{fav}” (up); point area grows with the bin's number of records. On the dashed grey "
            f"diagonal the model is perfectly calibrated; below it, it over-predicts. Left: all records "
            f"({OVERALL_COLOUR[0]}).")
    groups = shown_groups(perf)
    if groups and groups[1]:
        named = "; ".join(f"{colour}: {r.group}" for (colour, _), r in zip(GROUP_COLOURS, groups[1], strict=False))
        text += f" Right: by {groups[0]} ({named})."
    return text


def performance_section(section: Section, run: RunDocument, *, figures: dict | None = None, **_) -> None:
    """Fill the "Performance and calibration" section from ``run.fairness.performance``."""
    f = run.fairness
    if f is None:
        section.blocks.append(Paragraph("The fairness audit, which measures performance and calibration, was not "
                                        "part of this run.", "note"))
        return
    perf = f.performance
    if perf is None:
        section.blocks.append(Paragraph("This run document holds no performance and calibration results (the "
                                        "auditkit version that wrote it did not measure them).", "note"))
        return
    fav = f.favourable or run.data.favourable
    conf = f"{100 * perf.confidence:g}\u202f%"
    boot = (f"a bootstrap ({fmt.count(perf.n_boot)} resamples of the group's records, percentile interval shifted "
            f"by the bootstrap's estimate of the bias; its seed is in the findings)"
            if perf.n_boot else "none (the bootstrap was switched off)")
    section.blocks.append(Paragraph(threshold_text(perf, fav)))
    section.blocks.append(Paragraph(
        f"Measured on the test set. Prevalence: share of records that truly had “{fav}” (the base rate). TP/FP/TN/FN: "
        f"true positives (“{fav}” predicted and true), false positives (predicted, not true: false alarms), true "
        f"negatives and false negatives (missed cases). Accuracy: share of correct decisions. AUROC: the chance "
        f"that a random record with “{fav}” gets a higher probability than a random record without it (0.50 = "
        f"guessing, 1.00 = perfect ranking). Calibration error (expected calibration error, ECE): the gap between "
        f"predicted probability and observed rate, averaged over {perf.bins} equal-width probability bins weighted "
        f"by their records, in percentage points (0 = perfectly calibrated, higher is worse); it is biased upwards "
        f"in small groups. The same predicted probability should mean the same observed rate in every group."))
    section.blocks.append(Paragraph(
        f"Intervals at {conf}: Wilson for prevalence and accuracy, DeLong for AUROC, {boot} for the calibration "
        f"error. A statistic needs at least {perf.min_n} records in its own denominator (AUROC: at least "
        f"{perf.min_n} of each class); below that it is marked “too few” with the number it would rest on.",
        "small"))
    rows = [_row(perf.overall, perf, "All records")]
    for part in perf.groups:
        rows.append([Cell(f"By {part.attribute}", "label", colspan=len(COLUMNS))])
        rows += [_row(r, perf, r.group) for r in part.rows]
    section.blocks.append(Table(COLUMNS, rows, caption="Performance and calibration, overall and per group",
                                css="small perf"))
    figures = figures or {}
    if "reliability" in figures:
        section.blocks.append(Figure(figures["reliability"], caption(perf, fav),
                                     f"Reliability diagram of the predicted probability of “{fav}”"))


def reliability_figure(perf: Performance | None):
    """The reliability diagram of ``perf`` (a matplotlib Figure), None when there is nothing to draw."""
    if perf is None or hidden(perf.overall, perf.min_n) or not perf.overall.reliability:
        return None
    import matplotlib.ticker
    from matplotlib.figure import Figure as MplFigure

    groups = shown_groups(perf)
    fig = MplFigure(figsize=(WIDTH, 2.8))
    left, right = fig.subplots(1, 2, sharey=True)
    top = max(b.n for r in [perf.overall, *(groups[1] if groups else [])] for b in r.reliability) or 1

    def draw(ax, row: PerfRow, colour: str, label: str) -> None:
        bins = [b for b in row.reliability if b.n and b.mean_predicted is not None and b.observed_rate is not None]
        x, y = [b.mean_predicted for b in bins], [b.observed_rate for b in bins]
        ax.plot(x, y, "-", color=colour, linewidth=1.2, label=label)
        ax.scatter(x, y, s=[8 + 70 * b.n / top for b in bins], color=colour, zorder=3, linewidths=0)

    for ax, title in ((left, "All records"), (right, f"By {groups[0]}" if groups and groups[1] else "")):
        ax.plot([0, 1], [0, 1], linestyle="--", color="#777777", linewidth=0.9)
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(-0.03, 1.03)
        ax.set_aspect("equal")
        ticks = [0, 0.25, 0.5, 0.75, 1]
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        ax.set_xlabel("mean predicted probability")
        ax.set_title(title, loc="left")
    left.set_ylabel("observed rate")
    draw(left, perf.overall, OVERALL_COLOUR[1], "all records")
    if groups and groups[1]:
        for (_, colour), row in zip(GROUP_COLOURS, groups[1], strict=False):
            draw(right, row, colour, row.group if len(row.group) <= 28 else row.group[:27] + "…")
        right.legend(frameon=False, loc="upper left")
    else:
        right.set_axis_off()
    fig.tight_layout()
    return fig
