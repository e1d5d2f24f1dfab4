"""Static figures of the report (matplotlib, SVG, byte-for-byte deterministic).

``render_figures(run, outdir)`` writes ``outdir/figures/*.svg`` and returns ``{name: "figures/<file>"}``:

- ``group_metrics_<i>``: selection rate, TPR and FPR per group of the i-th ``fairness.groups`` table,
  with Wilson intervals where the run has them; suppressed groups (``sufficient`` false) are left out;
- ``drivers_<i>``: the i-th attribution: left, the predicted change of the gap if each of the top
  records were removed (drivers < 0, wideners > 0), by token; right, the same summed over the training
  records of each group × label cell (cells below the minimum size are left out);
- ``risk_distribution``: the privacy risk score of members vs non-members (shares), with the flag threshold;
- ``roc``: membership-inference ROC of each attack on log-log axes, with the random diagonal.

File names carry an index, never a user string. Determinism: the Agg-free SVG backend with a fixed
``svg.hashsalt``, no date metadata, text drawn as paths (no font lookup when the PDF is made), and
``text.parse_math`` off so that a "$" in a group label is printed, not interpreted.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from ..audits.fairness.findings import Attribution, GroupTable
from ..audits.privacy.findings import Attack, Distribution
from ..rundoc import RunDocument
from .blocks import min_cell
from .performance import reliability_figure

RC = {
    "font.family": "DejaVu Sans", "font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8,
    "xtick.labelsize": 7.5, "ytick.labelsize": 7.5, "legend.fontsize": 7.5, "svg.hashsalt": "auditkit-report",
    "svg.fonttype": "path", "text.parse_math": False, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.color": "#dddddd", "grid.linewidth": 0.6, "axes.axisbelow": True,
}
#: Okabe-Ito colours (distinguishable with colour-vision deficiency)
BLUE, ORANGE, GREEN, RED, GREY, PURPLE = "#0072B2", "#E69F00", "#009E73", "#D55E00", "#777777", "#CC79A7"
WIDTH = 6.6  # inches: the text width of an A4 page with the report's margins


def _label(text, limit: int = 28) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _exponent(values) -> int:
    """Power of ten (a multiple of 3) that brings the largest magnitude into [1, 1000)."""
    top = max((abs(v) for v in values), default=0.0)
    if top == 0 or 1e-2 <= top < 1e3:
        return 0
    return int(np.floor(np.log10(top) / 3) * 3)


def _sup(n: int) -> str:
    return str(n).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


def _percent(x, _pos=None) -> str:
    """Tick label of a log-scale rate without mathtext: 0.001 → "0.1 %"."""
    v = 100 * x
    return f"{v:.0f}\u202f%" if v >= 1 else f"{v:.1g}\u202f%"


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, format="svg", metadata={"Date": None}, bbox_inches="tight")


def group_metrics(table: GroupTable) -> Figure | None:
    groups = [g for g in table.groups if g.sufficient and not g.unknown]
    if not groups:
        return None
    panels = (("selection_rate", "Selection rate"), ("tpr", "TPR (lower = worse)"), ("fpr", "FPR (higher = worse)"))
    fig = Figure(figsize=(WIDTH, 0.45 + 0.32 * len(groups) + 0.5))
    axes = fig.subplots(1, 3, sharey=True)
    y = np.arange(len(groups))[::-1]
    for ax, (name, title) in zip(axes, panels, strict=False):
        for yi, g in zip(y, groups, strict=False):
            v = g.metrics.get(name)
            if v is None:
                continue
            ci = g.intervals.get(name)
            if ci and None not in ci:
                ax.plot([ci[0], ci[1]], [yi, yi], color=BLUE, linewidth=2.2, alpha=0.45, solid_capstyle="butt")
            ax.plot([v], [yi], "o", color=BLUE, markersize=4.5)
        ax.set_xlim(-0.02, 1.02)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.set_title(title, loc="left")
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        ax.set_ylim(-0.6, len(groups) - 0.4)
    axes[0].set_yticks(y, [_label(g.group) for g in groups])
    fig.tight_layout()
    return fig


def _effect_bars(ax, effects: list[float], labels: list[str], title: str, xlabel: str, *, height: float,
                 mono: bool) -> None:
    """Horizontal bars of effects (scaled by a common power of ten), negative ones orange-red (Okabe-Ito vermilion,
    named so in the axis label), first at the top; at most five x ticks so that their labels never overlap."""
    exponent = _exponent(effects)
    scaled = [e / 10.0 ** exponent for e in effects]
    ax.barh(range(len(scaled)), scaled, color=[RED if e < 0 else GREY for e in scaled], height=height)
    ax.set_yticks(range(len(scaled)), labels, **({"fontfamily": "DejaVu Sans Mono"} if mono else {}))
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.6)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=4, symmetric=False, min_n_ticks=2))
    ax.tick_params(axis="x", labelrotation=0)
    ax.set_title(title, loc="left")
    ax.set_xlabel(xlabel.format(unit=f" (×10{_sup(exponent)})" if exponent else ""))


def drivers(att: Attribution, minimum: int) -> Figure | None:
    recs = att.drivers[:8] + att.wideners[:4][::-1]
    cells = [c for c in att.cells if not c.suppressed and c.count is not None and c.count >= minimum]
    if not recs and not cells:
        return None
    fig = Figure(figsize=(WIDTH, 2.5))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1]})
    if recs:
        _effect_bars(left, [float(r.effect or 0) for r in recs], [r.token for r in recs],
                     "Top records: change of gap if removed", "change of the gap{unit}; orange-red = drives it",
                     height=0.7, mono=True)
    else:
        left.set_axis_off()
    if cells:
        _effect_bars(right, [float(c.effect or 0) for c in cells],
                     [f"{_label(c.group, 22)} · {_label(c.label, 10)}" for c in cells],
                     "Training group × label: summed change", "summed change{unit}; negative = cell drives it",
                     height=0.6, mono=False)
    else:
        right.set_axis_off()
    fig.tight_layout()
    return fig


def risk_distribution(dist: Distribution, threshold) -> Figure | None:
    edges = np.asarray(dist.edges, dtype=float)
    members = np.asarray(dist.members, dtype=float)
    non = np.asarray(dist.nonmembers, dtype=float)
    if edges.size < 2 or members.size != edges.size - 1 or non.size != edges.size - 1:
        return None
    fig = Figure(figsize=(WIDTH, 2.3))
    ax = fig.subplots()
    width = np.diff(edges)
    ax.bar(edges[:-1], members / max(members.sum(), 1), width=width, align="edge", color=BLUE, alpha=0.55,
           label="training records (members)")
    ax.step(edges, np.append(non / max(non.sum(), 1), 0), where="post", color=ORANGE, linewidth=1.4,
            label="unseen records (non-members)")
    t = dist.threshold if "threshold" in dist.model_fields_set else threshold
    if t is not None:
        ax.axvline(float(t), color=RED, linestyle="--", linewidth=1.2, label=f"flag threshold ({float(t):.2f})")
    ax.set_xlabel("risk score (1 = as extreme as the top of the non-members; higher = more exposed)")
    ax.set_ylabel("share of records")
    ax.set_xlim(edges[0], edges[-1])
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def roc(attacks: dict[str, Attack], n_nonmembers) -> Figure | None:
    curves = [(name, a.roc) for name, a in attacks.items() if a.roc is not None and a.roc.fpr]
    if not curves:
        return None
    low = 1.0 / max(float(n_nonmembers or 1000), 10.0)
    fig = Figure(figsize=(WIDTH * 0.8, 3.0))
    ax = fig.subplots()
    grid = np.logspace(np.log10(low), 0, 50)
    ax.plot(grid, grid, linestyle="--", color=GREY, linewidth=1, label="random guess")
    for (name, r), colour in zip(curves, (BLUE, ORANGE, GREEN, PURPLE), strict=False):
        fpr, tpr = np.asarray(r.fpr, float), np.asarray(r.tpr, float)
        keep = (fpr > 0) & (tpr > 0)
        auc = attacks[name].auc
        ax.step(fpr[keep], tpr[keep], where="post", color=colour, linewidth=1.4,
                label=f"{_label(name)} (AUC {auc:.2f})" if auc is not None else _label(name))
    ax.axvline(0.01, color=RED, linewidth=0.8, linestyle=":", label="1 % false positives")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, 1)
    ax.set_ylim(low, 1)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(_percent))
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("false positive rate (non-members accused)")
    ax.set_ylabel("true positive rate (members found)")
    ax.set_aspect("equal")
    ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.03, 0.5))
    fig.tight_layout()
    return fig


def render_figures(run: RunDocument, outdir: Path) -> dict[str, str]:
    """Write the figures of ``run`` under ``outdir/figures``; returns ``{name: relative path}``."""
    folder = Path(outdir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    minimum = min_cell(run)
    f, p = run.fairness, run.privacy
    with matplotlib.rc_context(RC):
        tables, atts = (f.groups, f.attributions) if f is not None else ([], [])
        atts = [] if f is not None and f.flagged_gaps else atts      # shown only when no rule flags a gap
        jobs = [(f"group_metrics_{i}", lambda t=t: group_metrics(t)) for i, t in enumerate(tables, 1)]
        jobs += [(f"drivers_{i}", lambda a=a: drivers(a, minimum)) for i, a in enumerate(atts, 1)]
        jobs.append(("reliability", lambda: reliability_figure(f.performance if f is not None else None)))
        if p is not None and p.distribution is not None:
            jobs.append(("risk_distribution", lambda: risk_distribution(p.distribution, p.threshold)))
        if p is not None and p.attacks:
            jobs.append(("roc", lambda: roc(p.attacks, p.n_nonmembers)))
        for name, make in jobs:
            fig = make()
            if fig is None:
                continue
            _save(fig, folder / f"{name}.svg")
            out[name] = f"figures/{name}.svg"
    return out
