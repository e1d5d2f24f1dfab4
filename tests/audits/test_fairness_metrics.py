"""Fairness statistics: group metrics against fairlearn, the minimum n applied to each rate's own denominator,
disparities, four-fifths impact ratios, the coverage of the Newcombe / MOVER-R intervals and the group-stratified
bootstrap of the record metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as skm
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.linear_model import LogisticRegression

from auditkit.audits.fairness.disparities import disparities
from auditkit.audits.fairness.intervals import newcombe_difference, ratio_interval
from auditkit.audits.fairness.metrics import METRICS, GroupRow, GroupTable, group_metrics
from auditkit.errors import InputError

RATES = ("selection_rate", "tpr", "fpr", "fnr", "accuracy", "precision")


# ---- helpers ----

@pytest.fixture(scope="module")
def heart_audit(heart):
    """Logistic regression on the heart disease training split; favourable outcome = class 1."""
    X, y = heart["X"].numpy(), heart["y"].numpy()
    Xt, yt = heart["Xt"].numpy(), heart["yt"].numpy()
    clf = LogisticRegression(max_iter=2000).fit(X, y)
    proba = clf.predict_proba(Xt)
    test = heart["prepared"].test
    groups = pd.DataFrame({"sex": test["sex"].astype(str),
                           "age_band": np.where(test["age"] < 55, "<55", ">=55"),
                           "dataset": test["dataset"].astype(str)})
    losses = -np.log(proba[np.arange(len(yt)), yt.astype(int)])
    return {"y_true": yt == 1, "y_pred": proba.argmax(1) == 1, "scores": proba[:, 1], "losses": losses,
            "groups": groups}


def table_from_labels(labels, y_true, y_pred, *, min_group_size=30, **arrays):
    """group_metrics on one attribute given as per-record labels."""
    groups = pd.DataFrame({"g": labels})
    n = len(labels)
    table = group_metrics(np.asarray(y_true, bool), np.asarray(y_pred, bool),
                          scores=arrays.get("scores", np.full(n, .5)), losses=np.zeros(n), groups=groups,
                          attributes=["g"], min_group_size=min_group_size)[0]
    return table, {"y_true": y_true, "y_pred": y_pred, "groups": groups}


def selected(sizes_and_selected: dict[str, tuple[int, int]]):
    """Labels and predictions with, per group, ``n`` records of which ``k`` are selected."""
    labels, y_pred = [], []
    for g, (n, k) in sizes_and_selected.items():
        labels += [g] * n
        y_pred += [True] * k + [False] * (n - k)
    y_pred = np.array(y_pred)
    y_true = np.arange(len(y_pred)) % 2 == 0
    return np.array(labels, dtype=object), y_true, y_pred


def fairlearn_frame(audit, sensitive):
    def guard(f, denominator):
        return lambda yt, yp: f(yt, yp) if denominator(yt, yp) else np.nan

    metrics = {"count": count, "selection_rate": selection_rate, "accuracy": skm.accuracy_score,
               "tpr": guard(true_positive_rate, lambda yt, yp: (yt == 1).any()),
               "fnr": guard(false_negative_rate, lambda yt, yp: (yt == 1).any()),
               "fpr": guard(false_positive_rate, lambda yt, yp: (yt == 0).any()),
               "precision": lambda yt, yp: skm.precision_score(yt, yp, zero_division=np.nan)}
    return MetricFrame(metrics=metrics, y_true=audit["y_true"].astype(int), y_pred=audit["y_pred"].astype(int),
                       sensitive_features=sensitive)


# ---- (a) group metrics equal fairlearn's on real data ----

def test_group_metrics_equal_fairlearn_on_heart_disease(heart_audit):
    a = heart_audit
    tables = group_metrics(a["y_true"], a["y_pred"], scores=a["scores"], losses=a["losses"], groups=a["groups"],
                           attributes=["sex", "dataset"], intersections=[["sex", "age_band"]], min_group_size=1)
    assert [t.attribute for t in tables] == ["sex", "dataset", "sex & age_band"]
    assert tables[2].columns == ["sex", "age_band"]
    for table, sensitive in zip(tables, [a["groups"]["sex"], a["groups"]["dataset"],
                                         a["groups"][["sex", "age_band"]]], strict=True):
        expected = fairlearn_frame(a, sensitive).by_group
        assert len(table.groups) == len(expected)
        for key, row in expected.iterrows():
            label = " & ".join(key) if isinstance(key, tuple) else key
            got = table.row(label)
            assert got.count == row["count"] and got.metrics["count"] == row["count"]
            assert got.sufficient and not got.unknown
            for m in ("selection_rate", "accuracy", "tpr", "fnr", "fpr", "precision"):
                np.testing.assert_allclose(got.metrics.get(m, np.nan), row[m], rtol=1e-12, equal_nan=True,
                                           err_msg=f"{label} {m}")
            if isinstance(key, tuple):
                mask = np.logical_and.reduce([sensitive[c].to_numpy() == v
                                              for c, v in zip(sensitive, key, strict=True)])
            else:
                mask = (sensitive == key).to_numpy()
            assert got.metrics["mean_loss"] == pytest.approx(a["losses"][mask].mean(), rel=1e-12)
            yt = a["y_true"][mask]
            auc = skm.roc_auc_score(yt, a["scores"][mask]) if 0 < yt.sum() < yt.size else math.nan
            np.testing.assert_allclose(got.metrics.get("auc", np.nan), auc, rtol=1e-12, equal_nan=True)
            assert set(got.metrics) | set(got.insufficient) == set(METRICS) - {"count"} | {"count"}
            assert all(got.denominators[m] == 0 for m in got.insufficient)
    json.dumps([t.to_dict() for t in tables], allow_nan=False)


def test_minimum_n_applies_to_each_rates_own_denominator(heart_audit):
    """With the minimum of 30: a rate is withheld exactly when its own denominator (records, positives,
    negatives, predicted positives) is below 30, even in a group of 30 or more records."""
    a = heart_audit
    tables = group_metrics(a["y_true"], a["y_pred"], scores=a["scores"], losses=a["losses"], groups=a["groups"],
                           attributes=["sex"], intersections=[["sex", "age_band"]])
    small = tables[1].row("Female & <55")
    assert small.count == 23 and not small.sufficient
    assert set(small.metrics) == {"count"} and small.intervals == {}
    seen_partial = False
    for table, cols in zip(tables, [["sex"], ["sex", "age_band"]], strict=True):
        labels = a["groups"][cols].astype(str).agg(" & ".join, axis=1).to_numpy()
        for row in table.groups:
            yt, yp = a["y_true"][labels == row.group], a["y_pred"][labels == row.group]
            expected = {"accuracy": yt.size, "selection_rate": yt.size, "mean_loss": yt.size,
                        "tpr": int(yt.sum()), "fnr": int(yt.sum()), "fpr": int((~yt).sum()),
                        "precision": int(yp.sum()), "auc": int(min(yt.sum(), (~yt).sum()))}
            assert row.denominators == expected
            assert row.insufficient == {m: d for m, d in expected.items() if d < 30}
            for m in expected:
                assert (m in row.metrics) == (expected[m] >= 30)
                if m in RATES:
                    assert (m in row.intervals) == (expected[m] >= 30)
            seen_partial |= row.sufficient and bool(row.insufficient)
    assert seen_partial  # a group of ≥ 30 records with a rate withheld (too few positives or negatives)


def test_withholding_on_a_crafted_table():
    """40 records, 3 positives (all caught), 37 negatives of which 9 flagged: the TPR 3/3 and the FNR are
    withheld (3 positives), FPR 9/37 and selection rate 12/40 are reported, precision 3/12 is withheld."""
    y_true = np.r_[np.ones(3, bool), np.zeros(37, bool)]
    y_pred = np.r_[np.ones(3, bool), np.ones(9, bool), np.zeros(28, bool)]
    (table,) = group_metrics(y_true, y_pred, scores=None, losses=None, groups=pd.DataFrame({"g": ["a"] * 40}),
                             attributes=["g"])
    row = table.row("a")
    assert row.sufficient and row.insufficient == {"tpr": 3, "fnr": 3, "precision": 12, "auc": 3}
    assert row.metrics["fpr"] == pytest.approx(9 / 37) and row.metrics["selection_rate"] == pytest.approx(0.3)
    assert "tpr" not in row.metrics and "tpr" not in row.intervals
    assert row.to_dict()["insufficient"] == {"tpr": 3, "fnr": 3, "precision": 12, "auc": 3}


def test_disparities_on_heart_disease(heart_audit):
    a = heart_audit
    sex = group_metrics(a["y_true"], a["y_pred"], scores=a["scores"], losses=a["losses"], groups=a["groups"],
                        attributes=["sex"], min_group_size=5)[0]
    ds = disparities(sex, data=a, metrics=RATES + ("mean_loss", "auc"))
    assert [d.metric for d in ds] == list(RATES) + ["mean_loss", "auc"]
    for d in ds:
        assert d.status == "ok" and d.reference == "Male" and d.groups == ["Female", "Male"]
        f, m = sex.row("Female").metrics[d.metric], sex.row("Male").metrics[d.metric]
        assert d.difference == pytest.approx(abs(f - m)) and d.ratio == pytest.approx(min(f, m) / max(f, m))
        assert d.to_reference["Female"]["difference"] == pytest.approx(f - m)
        assert d.difference_ci[0] <= d.difference <= d.difference_ci[1]
        lo, hi = d.to_reference["Female"]["difference_ci"]
        assert lo <= f - m <= hi
        if d.metric in RATES:   # Newcombe / MOVER-R from the two groups' counts, no bootstrap
            assert d.method == "newcombe" and d.n_boot_used == 0
            assert (lo, hi) == newcombe_difference(*counts(a, sex, "Female", d.metric), *counts(a, sex, "Male",
                                                                                               d.metric))
        else:
            assert d.method == "bootstrap" and d.n_boot_used == 1000
        json.dumps(d.to_dict(), allow_nan=False)
    # passing the records' labels instead of the DataFrame gives the same answer
    again = disparities(sex, data={k: v for k, v in a.items() if k != "groups"},
                        groups=a["groups"]["sex"].to_numpy(), metrics=RATES + ("mean_loss", "auc"))
    assert [d.to_dict() for d in again] == [d.to_dict() for d in ds]


def counts(a, table, group, metric):
    """(numerator, denominator) of ``metric`` in ``group`` of the sex table, from the records."""
    mask = a["groups"][table.attribute].to_numpy() == group
    t, p = a["y_true"][mask], a["y_pred"][mask]
    return {"selection_rate": (p.sum(), t.size), "accuracy": ((t == p).sum(), t.size), "tpr": ((t & p).sum(), t.sum()),
            "fnr": ((t & ~p).sum(), t.sum()), "fpr": ((~t & p).sum(), (~t).sum()),
            "precision": ((t & p).sum(), p.sum())}[metric]


# ---- (b) coverage of the intervals ----

def test_rate_intervals_cover_at_the_nominal_rate():
    """Newcombe (difference) and MOVER-R (ratio) intervals of rates. Groups of 200 and 60; P(y=1)=0.5;
    TPR 0.7/0.5 and FPR 0.3/0.2, so selection rates 0.5/0.35."""
    rng = np.random.default_rng(2024)
    labels = np.repeat(["a", "b"], [200, 60]).astype(object)
    tpr, fpr = np.where(labels == "a", .7, .5), np.where(labels == "a", .3, .2)
    truth = {"selection_rate": (0.5, 0.35), "tpr": (0.7, 0.5)}
    reps = 600
    hits = {(m, s): 0 for m in truth for s in ("difference", "ratio", "to_reference", "impact_ratio")}
    for r in range(reps):
        y_true = rng.random(labels.size) < .5
        y_pred = rng.random(labels.size) < np.where(y_true, tpr, fpr)
        rows = [GroupRow(g, int((labels == g).sum()), {m: float(v) for m, v in _rates(y_true, y_pred, labels == g)
                                                        .items()}, True, False) for g in ("a", "b")]
        table = GroupTable("g", rows, ["g"], 30)
        for d in disparities(table, data={"y_true": y_true, "y_pred": y_pred, "groups": pd.DataFrame({"g": labels})},
                             metrics=tuple(truth), seed=r):
            pa, pb = truth[d.metric]
            hits[d.metric, "difference"] += d.difference_ci[0] <= pa - pb <= d.difference_ci[1]
            hits[d.metric, "ratio"] += d.ratio_ci[0] <= pb / pa <= d.ratio_ci[1]
            lo, hi = d.to_reference["b"]["difference_ci"]
            hits[d.metric, "to_reference"] += lo <= pb - pa <= hi
            if d.impact_ratio is not None:
                hits[d.metric, "impact_ratio"] += d.impact_ratio.ci[0] <= pb / pa <= d.impact_ratio.ci[1]
    coverage = {k: v / reps for k, v in hits.items() if not (k[0] == "tpr" and k[1] == "impact_ratio")}
    assert all(0.90 <= c <= 0.99 for c in coverage.values()), coverage


def _rates(y_true, y_pred, mask):
    t, p = y_true[mask], y_pred[mask]
    return {"selection_rate": p.mean(), "tpr": p[t].mean(), "fpr": p[~t].mean(), "fnr": 1 - p[t].mean(),
            "accuracy": (t == p).mean(), "precision": t[p].mean()}


def test_bootstrap_is_stratified_and_matches_resampling_records():
    """The bootstrap of a record metric (mean loss) resamples records within each group."""
    rng = np.random.default_rng(7)
    labels = np.repeat(["big", "small"], [400, 30]).astype(object)
    y_true = rng.random(430) < .6
    y_pred = rng.random(430) < np.where(y_true, .8, .3)
    losses = rng.exponential(np.where(labels == "small", 0.8, 0.5))
    groups = pd.DataFrame({"g": labels})
    (table,) = group_metrics(y_true, y_pred, scores=None, losses=losses, groups=groups, attributes=["g"])
    data = {"y_true": y_true, "y_pred": y_pred, "groups": groups, "losses": losses}
    d = disparities(table, data=data, metrics=("mean_loss",), n_boot=4000, seed=1)[0]
    assert d.n_boot_used == 4000 and d.method == "bootstrap" and d.ci_note is None
    naive = []
    idx = {g: np.flatnonzero(labels == g) for g in ("big", "small")}
    for _ in range(4000):
        means = {g: losses[rng.choice(where, size=where.size, replace=True)].mean() for g, where in idx.items()}
        naive.append(means["small"] - means["big"])
    np.testing.assert_allclose(d.to_reference["small"]["difference_ci"], np.quantile(naive, [.025, .975]), atol=0.03)
    same = disparities(table, data=data, metrics=("mean_loss",), n_boot=4000, seed=1)[0]
    assert same.to_dict() == d.to_dict()


def test_a_degenerate_bootstrap_gives_no_interval_and_says_why():
    """Every record of a group has the same loss: every resample gives the same mean, so no interval."""
    labels = np.repeat(["a", "b"], [40, 40]).astype(object)
    losses = np.r_[np.full(40, 0.3), np.full(40, 0.5)]
    y = np.arange(80) % 2 == 0
    groups = pd.DataFrame({"g": labels})
    (table,) = group_metrics(y, y, scores=None, losses=losses, groups=groups, attributes=["g"])
    d = disparities(table, data={"y_true": y, "y_pred": y, "groups": groups, "losses": losses},
                    metrics=("mean_loss",), n_boot=200)[0]
    assert d.difference == pytest.approx(0.2) and all(math.isnan(x) for x in d.difference_ci)
    assert d.ci_note == ("no interval for the difference, ratio, difference of b, ratio of b: every bootstrap "
                         "resample gave the same value, so the bootstrap cannot measure its uncertainty")
    assert d.to_dict()["difference_ci"] == [None, None]


def test_rate_intervals_are_valid_at_zero_and_one():
    """TPR 30/30 against 20/30: the bootstrap would give 30/30 in every resample; Newcombe gives width."""
    y_true = np.ones(60, bool)
    y_pred = np.r_[np.ones(30, bool), np.arange(30) < 20]
    labels = np.repeat(["a", "b"], 30).astype(object)
    table, data = table_from_labels(labels, y_true, y_pred)
    d = disparities(table, data=data, metrics=("tpr",))[0]
    assert d.values == {"a": 1.0, "b": pytest.approx(2 / 3)}
    assert d.difference_ci == newcombe_difference(30, 30, 20, 30)
    lo, hi = d.difference_ci
    assert 0 < lo < 1 / 3 < hi < 1 and d.method == "newcombe"
    assert d.ratio_ci == ratio_interval(20, 30, 30, 30) and d.ratio_ci[0] < 2 / 3 < d.ratio_ci[1]


# ---- (c) insufficient data ----

def test_small_group_is_marked_and_left_out():
    labels, y_true, y_pred = selected({"a": (100, 50), "b": (40, 20), "c": (10, 9)})
    table, data = table_from_labels(labels, y_true, y_pred)
    assert [(r.group, r.count, r.sufficient) for r in table.groups] == [("a", 100, True), ("b", 40, True),
                                                                         ("c", 10, False)]
    d = disparities(table, data=data, metrics=("selection_rate",))[0]
    assert d.status == "ok" and d.groups == ["a", "b"] and "c" not in d.values and "c" not in d.to_reference
    assert d.excluded == {"c": "10 records, fewer than 30"}
    assert d.difference == 0 and d.ratio == 1


def test_single_group_is_insufficient_data():
    labels, y_true, y_pred = selected({"a": (100, 50), "b": (10, 5)})
    table, data = table_from_labels(labels, y_true, y_pred)
    ds = disparities(table, data=data)
    assert [d.metric for d in ds] == list(RATES)
    for d in ds:
        assert d.status == "insufficient_data"
        assert d.reason == "only one group with at least 30 records (a); left out: b (10 records, fewer than 30)"
        out = d.to_dict()
        assert out["difference"] is None and out["ratio"] is None and out["difference_ci"] == [None, None]
        json.dumps(out, allow_nan=False)
    labels, y_true, y_pred = selected({"a": (20, 10)})
    table, data = table_from_labels(labels, y_true, y_pred)
    assert disparities(table, data=data, metrics=("tpr",))[0].reason == \
        "no group with at least 30 records; left out: a (20 records, fewer than 30)"


# ---- (d) unknown group ----

def test_missing_sensitive_values_form_a_reported_unknown_group():
    n = 200
    sex = np.array(["female", "male"] * (n // 2), dtype=object)
    sex[:40:2] = None          # 20 missing female values
    sex[1:40:4] = np.nan       # 10 missing male values
    sex[100:105] = "unknown"   # 5 already marked unknown
    groups = pd.DataFrame({"sex": sex, "band": np.where(np.arange(n) < 100, "<40", ">=40")})
    y_true = np.arange(n) % 3 == 0
    y_pred = np.arange(n) % 4 == 0
    tables = group_metrics(y_true, y_pred, scores=None, losses=None, groups=groups, attributes=["sex"],
                           intersections=[["sex", "band"]])
    unknown = tables[0].row("unknown")
    assert unknown.count == 35 and unknown.unknown and unknown.sufficient
    assert sum(r.count for r in tables[0].groups) == n
    assert unknown.metrics["selection_rate"] == pytest.approx(y_pred[pd.isna(sex) | (sex == "unknown")].mean())
    assert [r.group for r in tables[1].groups if r.unknown] == ["unknown & <40", "unknown & >=40"]
    assert "auc" in unknown.insufficient and math.isnan(unknown.metrics["mean_loss"])
    d = disparities(tables[0], data={"y_true": y_true, "y_pred": y_pred, "groups": groups},
                    metrics=("selection_rate",))[0]
    assert d.status == "ok" and d.groups == ["female", "male"]
    assert d.excluded == {"unknown": "unknown (missing sensitive value)"}


# ---- (e) undefined rates ----

def test_undefined_rates_are_nan_and_none():
    labels = np.repeat(["a", "b"], [50, 50]).astype(object)
    y_true = np.r_[np.zeros(50, bool), np.arange(50) % 2 == 0]   # group a: no positives
    y_pred = np.r_[np.zeros(50, bool), np.arange(50) % 5 == 0]   # group a: nothing selected
    table, data = table_from_labels(labels, y_true, y_pred, scores=np.linspace(0, 1, 100))
    table, data = table_from_labels(labels, y_true, y_pred, scores=np.linspace(0, 1, 100), min_group_size=1)
    a = table.row("a")
    assert a.insufficient == {"tpr": 0, "fnr": 0, "precision": 0, "auc": 0}   # denominator 0: withheld
    assert not any(m in a.metrics for m in a.insufficient)
    assert a.metrics["fpr"] == 0 and a.metrics["selection_rate"] == 0 and a.metrics["accuracy"] == 1
    assert "tpr" not in a.to_dict()["metrics"]
    default = disparities(table, data=data, metrics=("tpr",))[0]   # reference: first of the equally large groups
    assert (default.reference, default.status) == ("a", "insufficient_data")
    assert default.reason == "tpr is not reported in the reference group 'a' (0 positives, fewer than 1)"
    ds = {d.metric: d for d in disparities(table, data=data, metrics=("tpr", "fpr", "selection_rate"), reference="b")}
    assert ds["tpr"].status == "insufficient_data"
    assert ds["tpr"].reason == ("tpr is reported only in the reference group 'b' among the groups large enough to "
                                "compare")
    assert ds["tpr"].excluded == {"a": "0 positives, fewer than 1"}
    assert ds["fpr"].status == "ok"
    sr = ds["selection_rate"]   # a selects nobody: ratio 0, impact ratio 0
    assert sr.ratio == 0 and sr.impact_ratio.value == 0 and sr.impact_ratio.adverse_impact
    json.dumps([d.to_dict() for d in ds.values()], allow_nan=False)


# ---- (f) four-fifths impact ratios on a hand-made example ----

def test_four_fifths_impact_ratio_exact():
    labels, y_true, y_pred = selected({"A": (100, 60), "B": (50, 20), "C": (40, 30)})
    table, data = table_from_labels(labels, y_true, y_pred)
    d = disparities(table, data=data, metrics=("selection_rate",))[0]
    assert d.values == {"A": 0.6, "B": 0.4, "C": 0.75}
    assert d.reference == "A"   # the largest group
    assert d.difference == pytest.approx(0.35) and d.ratio == pytest.approx(0.4 / 0.75)
    assert (d.worst_group, d.best_group) == ("B", "C")
    assert d.to_reference["B"]["difference"] == pytest.approx(-0.2)
    assert d.to_reference["B"]["ratio"] == pytest.approx(2 / 3)
    assert d.to_reference["C"]["ratio"] == pytest.approx(1.25)
    ir = d.impact_ratio
    assert (ir.basis, ir.group, ir.compared_to, ir.adverse_impact) == ("reference", "B", "A", True)
    assert ir.value == pytest.approx(2 / 3) and ir.threshold == 0.8
    assert ir.ci[0] <= ir.value <= ir.ci[1]
    mx = d.impact_ratio_max
    assert (mx.basis, mx.group, mx.compared_to, mx.adverse_impact) == ("most_selected", "B", "C", True)
    assert mx.value == pytest.approx(0.4 / 0.75) and mx.ci == d.ratio_ci

    d = disparities(table, data=data, metrics=("selection_rate",), reference="C")[0]
    assert d.impact_ratio.value == pytest.approx(0.4 / 0.75) and d.impact_ratio.group == "B"

    labels, y_true, y_pred = selected({"A": (100, 50), "B": (100, 42)})   # 0.42 / 0.5 = 0.84: no adverse impact
    table, data = table_from_labels(labels, y_true, y_pred)
    d = disparities(table, data=data, metrics=("selection_rate",), n_boot=0)[0]
    assert d.impact_ratio.value == pytest.approx(0.84) and d.impact_ratio.adverse_impact is False
    assert d.reference == "A" and d.difference_ci == newcombe_difference(50, 100, 42, 100)   # no bootstrap needed
    assert d.impact_ratio.ci == ratio_interval(42, 100, 50, 100)
    fpr = disparities(table, data=data, metrics=("fpr",), n_boot=0)[0]
    assert fpr.impact_ratio is None and fpr.impact_ratio_max is None


# ---- bad input ----

def test_bad_input_messages():
    labels, y_true, y_pred = selected({"A": (100, 50), "B": (100, 42)})
    table, data = table_from_labels(labels, y_true, y_pred)
    with pytest.raises(InputError) as e:
        disparities(table, data=data, metrics=("recall",))
    assert str(e.value) == ("metrics=['recall'] is not allowed: use one or more of ['selection_rate', 'tpr', 'fpr', "
                            "'fnr', 'accuracy', 'precision', 'mean_loss', 'auc']")
    with pytest.raises(InputError) as e:
        disparities(table, data=data, reference="Z")
    assert str(e.value) == "reference='Z' is not a group of attribute 'g': use one of ['A', 'B']"
    with pytest.raises(InputError) as e:
        group_metrics(y_true, y_pred, scores=None, losses=None, groups=data["groups"], attributes=["sex"])
    assert str(e.value) == "attributes names column(s) ['sex'] that groups does not have: its columns are ['g']"
    with pytest.raises(InputError) as e:
        group_metrics(y_true, y_pred[:-1], scores=None, losses=None, groups=data["groups"], attributes=["g"])
    assert str(e.value) == "y_pred has 199 values but y_true has 200: pass one value per record"


def closed_form_wilson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """The Wilson score interval written out (the hand-written formula auditkit used before SciPy)."""
    from statistics import NormalDist
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@pytest.mark.parametrize("k, n, confidence", [(81, 263, 0.95), (0, 12, 0.95), (12, 12, 0.95), (5, 57, 0.95),
                                              (0, 1, 0.95), (1, 1, 0.9), (3, 40, 0.99)])
def test_wilson_interval_matches_the_closed_form(k, n, confidence):
    from auditkit.audits.fairness.metrics import wilson_interval
    lo, hi = wilson_interval(k, n, confidence)
    assert (lo, hi) == pytest.approx(closed_form_wilson(k, n, confidence), abs=1e-12)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_interval_of_no_trials_is_nan():
    from auditkit.audits.fairness.metrics import wilson_interval
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_group_rows_carry_rate_intervals_around_their_rates():
    from auditkit.audits.fairness.metrics import group_metrics
    rng = np.random.default_rng(3)
    yt, yp = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    groups = pd.DataFrame({"g": np.where(rng.random(200) < 0.3, "a", "b")})
    (table,) = group_metrics(yt, yp, scores=None, losses=None, groups=groups, attributes=["g"], min_group_size=10)
    for row in table.groups:
        members = groups["g"].to_numpy() == row.group
        tpr_denominator = int((yt[members] == 1).sum())
        lo, hi = row.intervals["tpr"]
        assert lo < row.metrics["tpr"] < hi
        assert hi - lo == pytest.approx(2 * 1.96 * np.sqrt(row.metrics["tpr"] * (1 - row.metrics["tpr"])
                                                           / tpr_denominator), rel=0.15)
