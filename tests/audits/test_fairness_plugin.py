"""The fairness plugin end to end on real data: attribution checked against actual retraining."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import ROOT

import auditkit as ak
from auditkit.audits.base import AuditContext, warm_start_trainer
from auditkit.audits.fairness.attribution import gap_measure
from auditkit.audits.fairness.plugin import FairnessAudit
from auditkit.audits.registry import available_plugins, load_plugin, run_plugin
from auditkit.data import DataSpec, age_bands, load_table, prepare_splits
from auditkit.errors import InputError

L2 = 0.01


def heart_splits(*, drop_sex_in_test: int = 0):
    frame = load_table(ROOT / "examples/heart_disease/data/heart_disease_uci.csv")
    frame["disease"] = np.where(frame.pop("num") > 0, "yes", "no")
    frame["id"] = [f"patient-{i:05d}" for i in frame["id"]]        # identifiers to look for in findings
    frame["age_band"] = age_bands(frame["age"], edges=(55,))
    rng = np.random.default_rng(0)
    test_rows = rng.permutation(len(frame))[:230]
    test = frame.iloc[test_rows].copy()
    if drop_sex_in_test:
        test.loc[test.index[:drop_sex_in_test], "sex"] = np.nan
    train = frame.drop(frame.index[test_rows])
    spec = DataSpec(target="disease", sensitive=("sex", "age_band"), id_column="id", favourable="yes",
                    features=tuple(c for c in frame.columns if c not in ("disease", "id", "age_band")))
    return prepare_splits({"train": train, "test": test}, spec)


def context_for(splits, *, train_fn=True):
    torch.manual_seed(0)
    X, y = torch.tensor(splits["train"].X), torch.tensor(splits["train"].y)
    model = torch.nn.Linear(X.shape[1], 2).double()
    assert ak.fit_model(model, X, y, l2=L2)["converged"]
    engine = ak.InfluenceEngine(model, "cross_entropy", l2=L2).fit(X, y)
    return AuditContext(model, engine, splits, loss="cross_entropy", l2=L2,
                        train_fn=warm_start_trainer(l2=L2) if train_fn else None, seed=0)


@pytest.fixture(scope="module")
def audited():
    splits = heart_splits(drop_sex_in_test=4)
    ctx = context_for(splits)
    options = {"min_group_size": 20, "bootstrap": 200, "intersections": [["sex", "age_band"]],
               "attribution": {"top_k": [5, 10, 20], "verify_k": [10]}}
    return ctx, run_plugin("fairness", ctx, options)


def test_registered_by_entry_point():
    assert "fairness" in available_plugins()
    assert load_plugin("fairness") is FairnessAudit
    with pytest.raises(InputError, match=r"^audit plugin 'fairnes' is not installed: available plugins are "):
        load_plugin("fairnes")


def test_unknown_option_is_refused_in_one_line():
    ctx = context_for(heart_splits(), train_fn=False)
    with pytest.raises(InputError, match=r"^options of audit 'fairness': min_group: Extra inputs are not permitted "
                                         r"\(got 5\)$"):
        run_plugin("fairness", ctx, {"min_group": 5})


def test_predicted_gap_after_removing_drivers_matches_retraining(audited):
    ctx, found = audited
    [att] = [a for a in found.attributions if a.attribute == "sex" and a.surrogate == "selection_rate"]
    assert att.gap > 0 and found.verified
    [check] = att.verification
    predicted_change, actual_change = check["predicted_gap"] - att.gap, check["actual_gap"] - att.gap
    assert actual_change < 0                                   # removing the drivers shrinks the gap
    assert abs(predicted_change - actual_change) <= 0.25 * abs(actual_change)
    # and more than removing as many random training records
    rng = np.random.default_rng(1)
    measure = gap_measure("selection_rate", *[ctx.test.groups["sex"].to_numpy() == g
                                              for g in (att.disadvantaged, att.advantaged)],
                          loss="cross_entropy", favourable=ctx.favourable)
    y = torch.tensor(ctx.test.y)
    random_models = [ctx.retrain_without(rng.choice(ctx.train.n, 10, replace=False)) for _ in range(3)]
    random_changes = [float(measure(ctx.outputs("test", m), y)) - att.gap for m in random_models]
    assert actual_change < min(random_changes)


def test_drivers_cells_and_curve_are_consistent(audited):
    ctx, found = audited
    for att in found.attributions:
        effects = [d.effect for d in att.drivers]
        assert effects == sorted(effects) and all(e < 0 for e in effects)
        assert all(w.effect > 0 for w in att.wideners)
        assert sum(c["count"] for c in att.cells) == ctx.train.n
        curve = [p["predicted_gap"] for p in att.removal_curve]
        assert curve == sorted(curve, reverse=True) and curve[0] < att.gap
        assert att.removal_curve[0]["predicted_gap"] == pytest.approx(
            att.gap + sum(d.effect for d in att.drivers[:5]), rel=1e-9)


def test_cell_totals_equal_influence_on_the_gap(audited):
    """Σ over a cell of e_j, from the plugin, equals the engine's own influence_on summed by hand."""
    ctx, found = audited
    [att] = [a for a in found.attributions if a.attribute == "sex" and a.surrogate == "mean_loss"]
    groups = ctx.test.groups["sex"].to_numpy()
    measure = gap_measure("mean_loss", groups == att.disadvantaged, groups == att.advantaged,
                          loss="cross_entropy", favourable=ctx.favourable)
    e = ctx.engine.influence_on(measure, *ctx.tensor("test"))
    train_sex = ctx.train.groups["sex"].to_numpy()
    for cell in att.cells:
        mask = (train_sex == cell["group"]) & (np.array(ctx.train.classes)[ctx.train.y] == cell["label"])
        assert cell["effect"] == pytest.approx(e[mask].sum(), rel=1e-9, abs=1e-15)


def test_unknown_group_counted_but_not_attributed(audited):
    _, found = audited
    [sex] = [t for t in found.tables if t.attribute == "sex"]
    unknown = [r for r in sex.groups if r.unknown]
    assert len(unknown) == 1 and unknown[0].count == 4
    assert all("unknown" not in (a.disadvantaged, a.advantaged) for a in found.attributions)


def test_performance_part_follows_the_group_tables(audited):
    """The plugin's ``performance`` part: a row per group of every table (the unknown group too), the decision
    threshold of a two-class model, the fairness bootstrap's seed, and counts that are those of the test split."""
    ctx, found = audited
    perf = found.to_dict()["performance"]
    assert perf["threshold"] == 0.5 and perf["min_n"] == 20 and perf["n_boot"] == 200
    assert perf["seed"] == ctx.seeds.used["bootstrap"]
    assert [g["attribute"] for g in perf["groups"]] == [t.attribute for t in found.tables]
    for part, table in zip(perf["groups"], found.tables, strict=True):
        assert [(r["group"], r["n"]) for r in part["rows"]] == [(g.group, g.count) for g in table.groups]
        assert sum(r["n"] for r in part["rows"]) == perf["overall"]["n"] == ctx.test.n
    fav = ctx.favourable
    pred = ctx.proba("test").argmax(1) == fav
    o = perf["overall"]
    assert (o["tp"], o["fn"]) == (int((pred & (ctx.test.y == fav)).sum()), int((~pred & (ctx.test.y == fav)).sum()))


def test_findings_are_json_and_hold_no_record_ids(audited):
    ctx, found = audited
    text = json.dumps(found.to_dict())
    assert "patient-" not in text
    assert "R-" in text                                            # records appear as tokens
    tokens = {row["token"]: row["record_id"] for row in ctx.tokens.mapping()}
    assert all(v.startswith("patient-") for v in tokens.values())


def test_explanations_default_to_misclassified_of_the_worst_group(audited):
    ctx, found = audited
    assert 0 < len(found.explanations) <= 5
    for case in found.explanations:
        assert case["true_label"] != case["predicted_label"]
        assert all(r["effect"] < 0 for r in case["toward_wrong"])
        assert all(r["effect"] > 0 for r in case["toward_right"])


def test_without_training_function_says_not_verified():
    ctx = context_for(heart_splits(), train_fn=False)
    found = run_plugin("fairness", ctx, {"bootstrap": 50, "attribution": {"surrogates": ["selection_rate"]}})
    assert not found.verified
    assert any("not verified by retraining" in n for n in found.notes)


def test_small_groups_are_insufficient_not_attributed():
    ctx = context_for(heart_splits(), train_fn=False)
    found = run_plugin("fairness", ctx, {"min_group_size": 500, "bootstrap": 20,
                                         "attribution": {"surrogates": ["selection_rate"]}})
    assert found.attributions == []
    assert all(d.status == "insufficient_data" for ds in found.disparities.values() for d in ds)
    assert any("no selection_rate attribution" in n for n in found.notes)


def test_unknown_attribute_is_named():
    ctx = context_for(heart_splits(), train_fn=False)
    with pytest.raises(InputError, match=r"^fairness: sensitive attribute 'race' is not in the data: available "
                                         r"attributes are \['sex', 'age_band'\]$"):
        run_plugin("fairness", ctx, {"attributes": ["race"]})


def test_single_group_attribute_is_insufficient_data():
    splits = heart_splits()
    for data in splits.values():
        data.groups["site"] = "all"                     # an attribute with one group only
    ctx = context_for(splits, train_fn=False)
    found = run_plugin("fairness", ctx, {"attributes": ["site"], "bootstrap": 20,
                                         "attribution": {"surrogates": ["selection_rate"]}})
    [table] = found.tables
    assert [(r.group, r.count) for r in table.groups] == [("all", 230)]
    assert {d.status for d in found.disparities["site"]} == {"insufficient_data"}
    assert found.attributions == [] and any(n.startswith("site: no selection_rate attribution") for n in found.notes)
