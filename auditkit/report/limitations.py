"""The limitations section, composed from the facts of the run document.

The runner records facts (``model.hidden_layers``, ``model.training_fit``, ``data.sensitive[*].unknown``,
``influence.refits``, ``influence.damping`` and ``influence.fitting``, ``numerics``, ``policy``); this module
turns them into the sentences a reader needs, then adds the run's own ``limitations`` (notes that no fact
describes, e.g. a plugin's) and what the report itself derives from the findings (sensitive stability
findings, suppressed groups, the plugins' notes, unresolved false-positive rates, unverified drivers).

An older ``run.json`` carries none of these facts and has the sentences already written out in
``limitations``: they are shown as they are, and nothing is composed twice.
"""

from __future__ import annotations

from collections import Counter

from ..rundoc import Numerics, RunDocument
from . import fmt
from .blocks import min_cell

FIRST_ORDER = ("Influence estimates are first-order approximations of leave-one-out retraining; their agreement "
               "with actual retraining on this model is stated in the methodology section where it was measured.")
NON_CONVEX = ("The model is not convex (it has hidden layers): influence estimates describe the effect of removing a "
              "record near the trained parameters; retraining from scratch can end elsewhere, and records the "
              "network has memorised can be underestimated (see the privacy trust check).")
PROXIES = ("Sensitive attributes that are not model inputs can still be reached through correlated features "
           "(proxies); the disparities measured here include such effects, the drivers name records, not features.")
NO_POLICY = "No policy was given: findings are reported without pass/fail checks."


def has_facts(run: RunDocument) -> bool:
    """True when the run records the facts the limitations are composed from (runs written since issue 17);
    an older run has its limitations written out as sentences instead."""
    return run.model.hidden_layers is not None or run.influence.fitting is not None or run.numerics is not None


def damping_note(run: RunDocument) -> str | None:
    """The sentence on a damping the engine added by itself because the Hessian was not positive definite
    (``influence.fitting.damping_source == "auto"``); an older run's own ``damping_note``; else None."""
    inf = run.influence
    if inf.fitting is None:
        return inf.damping_note
    if inf.fitting.damping_source != "auto" or not inf.damping:
        return None
    return (f"The Hessian of the training objective at the trained parameters is singular or not positive definite: "
            f"the model is not at a strict minimum. A damping of {inf.damping:.2g} (about 1e-3 of the largest "
            "eigenvalue) was added to H, which shrinks influence estimates along flat directions.")


def float32_note(count: int) -> str:
    """The sentence on a float32 audit recomputed in float64 because ``count`` influence values overflowed."""
    return (f"The audit was configured for float32 (model.dtype), but {count} influence values overflowed float32 "
            "(they were not finite: features or gradients of a magnitude whose squares exceed 3.4e38). The whole "
            "audit was recomputed in float64; every figure in this report comes from that float64 run.")


def _g(x, spec: str = ".3g") -> str:
    """A number in the format ``spec`` (three significant digits by default), a dash when it is missing."""
    return fmt.DASH if fmt.missing(x) else format(float(x), spec)


def _leaf(path: str) -> str:
    """The metric name of a dotted path (``fairness.groups[0].metrics.tpr`` → ``tpr``)."""
    return path.rsplit(".", 1)[-1].split("[", 1)[0] or path


def numerical_limitations(numerics: Numerics) -> list[str]:
    """Sentences on values that could not be computed (per part of the findings, with the metrics
    concerned: ``numerics.nonfinite``) and on predictions saturated in the model's dtype
    (``numerics.saturation``)."""
    out = []
    parts = []
    for part, paths in numerics.nonfinite.items():
        if paths:
            counts = Counter(_leaf(p) for p in paths)
            names = ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in counts.most_common(6))
            more = ", …" if len(counts) > 6 else ""
            parts.append(f"{part.replace('_', ' ')}: {len(paths)} ({names}{more})")
    if parts:
        out.append("Some figures could not be computed (undefined, e.g. a true-positive rate in a group without "
                   "positives, or not finite) and are shown as “—”, never as numbers; policy rules on them report "
                   f"insufficient data. Values per part: {'; '.join(parts)}.")
    s = numerics.saturation
    if s is not None and (s.certain_right or s.certain_wrong) and s.n:
        k = s.certain_right + s.certain_wrong
        out.append(f"The model predicts {k} of its {s.n} training records ({100 * k / s.n:.1f} %) with certainty: "
                   f"the probability of the record's own label is exactly 1 ({s.certain_right}) or 0 "
                   f"({s.certain_wrong}) in {s.dtype}; the largest logit is {_g(s.max_abs_logit)} in absolute "
                   "value. This happens when the training data are separable or the weights very large. The loss "
                   "gradients of these records vanish, so their influence estimates and privacy risk scores are "
                   "about zero whatever their real effect, and the Hessian rests on the other records and the L2 "
                   "term: read their low scores with caution, or audit a model trained with more L2 regularisation.")
    return out


def from_facts(run: RunDocument) -> list[str]:
    """The sentences composed from the run's facts, in the order the section shows them."""
    out = [NO_POLICY] if run.policy is None else []
    if run.model.hidden_layers:
        out.append(NON_CONVEX)
    out.append(FIRST_ORDER)
    for s in run.data.sensitive:
        unknown = sum(s.unknown.values())
        if unknown:
            out.append(f"{unknown} record(s) have no value for {s.attribute!r}: they form the group 'unknown' and are "
                       "left out of disparities.")
    fit = run.model.training_fit
    if fit is not None and not fit.stationary:
        out.append(f"The audited weights are not a minimum of the stated objective on the training records as "
                   f"featurized (gradient norm {_g(fit.grad_norm)}, {_g(fit.relative)} of its size with shuffled "
                   f"labels, above the {_g(fit.threshold, 'g')} the audit accepts; model.allow_non_stationary was "
                   "set): influence estimates assume a minimum and may be far from what retraining would do.")
    refits = run.influence.refits
    if refits is not None and refits.not_converged:
        which = ", ".join(f"{k}: {v.not_converged} of {v.count}" for k, v in refits.by_purpose.items()
                          if v.not_converged)
        out.append(f"{refits.not_converged} of the {refits.count} retrainings did not converge ({which}; the "
                   f"largest gradient norm left was {_g(refits.largest_grad_norm)}, relative "
                   f"{_g(refits.largest_relative)} against a tolerance of {_g(refits.tolerance)}): results measured "
                   "by retraining carry that optimisation error.")
    if run.fairness is not None:
        out.append(PROXIES)
    if run.numerics is not None:
        out += numerical_limitations(run.numerics)
    fitting = run.influence.fitting
    if fitting is not None and fitting.float32_overflows:
        out.append(float32_note(fitting.float32_overflows))
    return out


def from_findings(run: RunDocument) -> list[str]:
    """What the report derives from the findings: the damping note, sensitive stability findings, groups too
    small to report, each built-in plugin's notes (or that it did not run), attacks' false-positive rates that
    could not be measured, and unverified drivers of the disparities."""
    out = []
    note = damping_note(run)
    if note:
        out.append(note)
    for f in run.influence.stability.findings:
        if f.verdict == "sensitive":
            out.append(f"The finding “{f.finding}” is sensitive: its top records change when the ridge of the "
                       "Hessian (L2 penalty plus damping) or the solver changes, so treat the individual records as "
                       "indicative only.")
    names = suppressed_groups(run)
    if names and any(g.suppressed for t in run.fairness.groups for g in t.groups):
        out.append(f"Groups with fewer than {min_cell(run)} test records, and the groups from which such a group "
                   f"could be worked out by subtraction, were not reported: {', '.join(names)}.")
    elif names:
        out.append(f"Groups with fewer than {min_cell(run)} test records were not reported: {', '.join(names)}.")
    for block, words in ((run.fairness, "Fairness"), (run.privacy, "Privacy"), (run.data_quality, "Data quality")):
        if block is None:
            out.append(f"{words} was not audited in this run.")
        else:
            out += [str(n) for n in block.notes]
    if run.privacy is not None:
        for name, a in run.privacy.attacks.items():
            for f in a.unresolved_fprs:
                if f:
                    out.append(f"The {name} attack's TPR at {fmt.pct(f, 1)} FPR could not be measured: it needs at "
                               f"least {int(round(1 / f))} non-members and the run had {fmt.count(a.n_nonmembers)}.")
    if run.fairness is not None and not run.fairness.verified:
        out.append("The predicted effects of removing the drivers of each disparity were not verified by "
                   "retraining (no training function was given).")
    return out


def suppressed_groups(run: RunDocument) -> list[str]:
    """Names of the test-set groups too small to report (unknown categories aside)."""
    if run.fairness is None:
        return []
    return [g.group for t in run.fairness.groups for g in t.groups if (g.suppressed or not g.sufficient)
            and not g.unknown]


def limitations(run: RunDocument) -> list[str]:
    """Every sentence of the limitations section, once each, in order: the facts' sentences, the run's own
    notes, then what the findings show. An older run (no facts) shows its written-out sentences first."""
    items = (from_facts(run) + run.limitations) if has_facts(run) else list(run.limitations)
    return list(dict.fromkeys(items + from_findings(run)))
