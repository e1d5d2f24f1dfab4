"""The data-quality plugin's out-of-fold score: checked against models actually trained without each fold,
and chosen only when the context has a training function."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from audits.test_fairness_plugin import L2, context_for, heart_splits

import auditkit as ak
from auditkit.audits.base import AuditContext
from auditkit.audits.quality import (
    EVEN_ODDS,
    fold_assignment,
    misfit_first_order,
    out_of_fold_losses,
    out_of_fold_order,
    suspicion_order,
)
from auditkit.audits.registry import run_plugin
from auditkit.errors import InputError


@pytest.fixture(scope="module")
def cross_fitted():
    """Heart disease, 10% of the training labels flipped, logistic regression with a warm-start training
    function; its out-of-fold losses (5 folds, the seed derived from the context's seed 0)."""
    splits = heart_splits()
    train = splits["train"]
    flip = np.random.default_rng(0).choice(train.n, train.n // 10, replace=False)
    y = train.y.copy()
    y[flip] = 1 - y[flip]
    train.y = y
    ctx = context_for(splits)
    oof, fold = out_of_fold_losses(ctx, folds=5, seed=ctx.seed_for("quality"))   # the plugin's default seed
    return ctx, oof, fold


def test_folds_are_stratified_seeded_and_cover_every_record():
    y = np.array([0] * 53 + [1] * 47)
    fold = fold_assignment(y, 5, seed=0)
    assert sorted(np.bincount(fold).tolist()) == [20] * 5                # every record in one fold, equal sizes
    for label in (0, 1):
        per_fold = np.bincount(fold[y == label], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1                      # stratified by label
    assert np.array_equal(fold, fold_assignment(y, 5, seed=0))           # seeded
    assert not np.array_equal(fold, fold_assignment(y, 5, seed=1))


def test_out_of_fold_loss_is_the_loss_of_a_model_trained_without_the_fold(cross_fitted):
    ctx, oof, fold = cross_fitted
    X, y = torch.tensor(ctx.train.X), torch.tensor(ctx.train.y)
    assert np.isfinite(oof).all()
    for k in (0, 3):
        held = torch.tensor(fold == k)
        torch.manual_seed(123)                      # a cold start from other weights: the minimum is unique
        model = torch.nn.Linear(X.shape[1], 2).double()
        assert ak.fit_model(model, X[~held], y[~held], l2=L2)["converged"]
        with torch.no_grad():
            truth = F.cross_entropy(model(X[held]), y[held], reduction="none").numpy()
        np.testing.assert_allclose(oof[fold == k], truth, rtol=1e-5, atol=1e-7)
    # a record's loss rises when the model no longer sees it
    assert (oof - ctx.losses("train")).mean() > 0


def test_plugin_uses_the_out_of_fold_score_only_with_a_training_function(cross_fitted):
    ctx, oof, _ = cross_fitted
    n = ctx.train.n
    loss, s_tilde = ctx.losses("train"), ctx.self_influence(leverage=True)
    tokens = {ctx.token("train", j): j for j in range(n)}

    measured = run_plugin("data_quality", ctx, {"top": n})
    assert measured.out_of_fold and measured.folds == 5 and "out-of-fold" in measured.score
    positions = [tokens[s["token"]] for s in measured.suspects]
    # the documented rule, written out: misfit records by loss; the others by the sum of their ranks
    # (0 = highest, ties by position) by loss and by out-of-fold loss, ties by the loss rank
    rank_loss = {j: r for r, j in enumerate(sorted(range(n), key=lambda j: (-loss[j], j)))}
    rank_oof = {j: r for r, j in enumerate(sorted(range(n), key=lambda j: (-oof[j], j)))}
    misfit = sorted((j for j in range(n) if loss[j] > np.log(2)), key=lambda j: (-loss[j], j))
    rest = sorted((j for j in range(n) if loss[j] <= np.log(2)),
                  key=lambda j: (rank_loss[j] + rank_oof[j], rank_loss[j], j))
    assert positions == misfit + rest
    assert 0 < len(misfit) < n
    assert positions == out_of_fold_order(loss, oof).tolist()
    assert positions != suspicion_order(loss, s_tilde).tolist()
    np.testing.assert_allclose([s["score"] for s in measured.suspects], oof[positions], rtol=1e-12)
    assert measured.worth_inspecting == int((oof > EVEN_ODDS).sum())

    bare = AuditContext(ctx.model, ctx.engine, ctx.splits, loss="cross_entropy", l2=L2, train_fn=None, seed=0)
    for context, options in ((bare, {"top": n}), (ctx, {"top": n, "out_of_fold": False})):
        estimated = run_plugin("data_quality", context, options)
        assert not estimated.out_of_fold and estimated.folds is None and "self-influence" in estimated.score
        position = {context.token("train", j): j for j in range(n)}      # each context keys its own tokens
        assert [position[s["token"]] for s in estimated.suspects] == suspicion_order(loss, s_tilde).tolist()
    assert "no training function" in run_plugin("data_quality", bare, {}).notes[0]
    assert "cross-fitting" in measured.notes[0]


def test_orders_on_a_hand_made_case():
    loss = np.array([0.10, 1.00, 0.80, 0.20, 0.69, 0.30])
    oof = np.array([2.00, 0.50, 5.00, 0.30, 0.90, 0.95])
    # misfit (ℓ > log 2): 1 (ℓ 1.0) before 2 (ℓ 0.8) although its out-of-fold loss is lower; then by oof
    assert misfit_first_order(loss, oof).tolist() == [1, 2, 0, 5, 4, 3]
    # ranks (0 = highest) by loss: 1, 2, 4, 5, 3, 0 → 0 1 2 3 4 5; by oof: 2, 0, 5, 4, 1, 3 → 0 1 2 3 4 5
    # the fitted records 0, 3, 4, 5: rank sums 5 + 1, 4 + 5, 2 + 3, 3 + 2 → 4 (5, loss rank 2), 5 (5, loss rank
    # 3), 0 (6), 3 (9)
    assert out_of_fold_order(loss, oof).tolist() == [1, 2, 4, 5, 0, 3]


@pytest.mark.parametrize("options", [{"folds": 1}, {"folds": 51}, {"folds": "five"}, {"folds": 2.5},
                                     {"fold": 5}, {"out_of_fold": "maybe"}, {"seed": "x"}])
def test_options_are_validated(cross_fitted, options):
    ctx, _, _ = cross_fitted
    with pytest.raises(InputError, match="data_quality"):
        run_plugin("data_quality", ctx, options)


def test_out_of_fold_needs_a_training_function_and_sane_folds(cross_fitted):
    ctx, _, _ = cross_fitted
    bare = AuditContext(ctx.model, ctx.engine, ctx.splits, loss="cross_entropy", l2=L2, seed=0)
    with pytest.raises(InputError, match="training function"):
        out_of_fold_losses(bare)
    with pytest.raises(InputError, match="folds=1 is not allowed"):
        out_of_fold_losses(ctx, folds=1)
