"""The data-quality plugin on real data with flipped labels; its score checked against actual retraining."""

from __future__ import annotations

import json

import numpy as np
import pytest
from audits.test_fairness_plugin import context_for, heart_splits
from sklearn.metrics import roc_auc_score

from auditkit.audits.registry import run_plugin


@pytest.fixture(scope="module")
def flipped():
    splits = heart_splits()
    train = splits["train"]
    rng = np.random.default_rng(0)
    flip = rng.choice(train.n, train.n // 10, replace=False)
    y = train.y.copy()
    y[flip] = 1 - y[flip]
    train.y = y
    ctx = context_for(splits)
    return ctx, flip, run_plugin("data_quality", ctx, {"top": 69})


def test_score_is_the_estimated_leave_one_out_loss_and_matches_retraining(flipped):
    ctx, _, found = flipped
    misfit = [sus["loss"] > np.log(2) for sus in found.suspects]
    assert misfit == sorted(misfit, reverse=True)                       # misfit records first
    first = [sus["loss"] for sus, bad in zip(found.suspects, misfit, strict=True) if bad]
    assert first == sorted(first, reverse=True)
    loss, s = ctx.losses("train"), ctx.self_influence(leverage=True)
    top = found.suspects[:5]
    tokens = {ctx.token("train", j): j for j in range(ctx.train.n)}
    for suspect in top:
        j = tokens[suspect["token"]]
        assert suspect["score"] == pytest.approx(loss[j] + s[j], rel=1e-12)
        held_out = ctx.losses("train", ctx.retrain_without([j]))[j]          # actual leave-one-out loss
        assert suspect["score"] == pytest.approx(held_out, rel=0.1)


def test_flipped_labels_rank_high(flipped):
    ctx, flip, found = flipped
    is_flipped = np.zeros(ctx.train.n, bool)
    is_flipped[flip] = True
    score = ctx.losses("train") + ctx.self_influence(leverage=True)
    assert roc_auc_score(is_flipped, score) > 0.85
    tokens_flipped = {ctx.token("train", int(j)) for j in flip}
    hits = sum(s["token"] in tokens_flipped for s in found.suspects)   # top 10%
    assert hits / len(found.suspects) > 0.4                             # chance: 0.1


def test_worth_inspecting_counts_add_up(flipped):
    ctx, _, found = flipped
    score = ctx.losses("train") + ctx.self_influence(leverage=True)
    assert found.worth_inspecting == int((score > np.log(2)).sum())
    assert found.share_worth_inspecting == pytest.approx(found.worth_inspecting / ctx.train.n)
    sex_cells = [c for c in found.by_group if c["attribute"] == "sex"]
    assert sum(c["worth_inspecting"] for c in sex_cells) == found.worth_inspecting
    assert sum(c["count"] for c in sex_cells) == ctx.train.n
    assert {s["reason"] for s in found.suspects} <= {"misfit", "fit only because seen"}
    assert "patient-" not in json.dumps(found.to_dict())
