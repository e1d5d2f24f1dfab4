"""The "Performance and calibration" section: the numbers of the heart example's test split (recomputed here with
scikit-learn) as the HTML shows them, suppressed rows, the threshold sentence and the reliability diagram."""

from __future__ import annotations

import copy
import html
import re

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from conftest import ROOT
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex

from auditkit.audits.base import probabilities
from auditkit.audits.fairness.findings import Performance
from auditkit.audits.fairness.metrics import group_metrics, record_groups
from auditkit.audits.fairness.performance import performance
from auditkit.config import load_config
from auditkit.inputs import load_data, load_model
from auditkit.report import build_document, figures, fmt, render_figures
from auditkit.report.html import render_html_string
from auditkit.report.performance import GROUP_COLOURS, OVERALL_COLOUR, reliability_figure

CAPTION = "Performance and calibration, overall and per group"


@pytest.fixture(scope="module")
def heart_perf():
    """The heart example's test split (labels, decisions, scores, group labels) and its performance part."""
    torch.set_num_threads(1)
    config = load_config(ROOT / "examples/heart_disease/audit.yaml")
    data = load_data(config)
    test = data.splits["test"]
    with torch.no_grad():
        proba = probabilities(load_model(config, data.splits)(torch.tensor(test.X)), "cross_entropy").numpy()
    fav = test.favourable_index
    y, pred, s = (test.y == fav).astype(int), (proba.argmax(1) == fav).astype(int), proba[:, fav]
    tables = group_metrics(y, pred, scores=s, losses=None, groups=test.groups, attributes=["sex", "age_band"],
                           intersections=[["sex", "age_band"]], min_group_size=30)
    perf = performance(y, pred, s, groups=test.groups, tables=tables, min_n=30, n_boot=100, seed=1).to_dict()
    labels = {t.attribute: record_groups(test.groups, t.columns) for t in tables}
    return {"y": y, "pred": pred, "s": s, "labels": labels, "perf": perf}


@pytest.fixture(scope="module")
def rendered_perf(sample_run, heart_perf, tmp_path_factory):
    """The sample run with the heart performance part (one row marked suppressed, as the suppression transform
    leaves it), its figures and HTML."""
    run = copy.deepcopy(sample_run)
    perf = copy.deepcopy(heart_perf["perf"])
    rows = perf["groups"][2]["rows"]
    rows[:] = [r if r["group"] != "Male & <55" else {"group": "Male & <55", "suppressed": True} for r in rows]
    run["fairness"]["performance"] = perf
    out = tmp_path_factory.mktemp("perf")
    figs = render_figures(run, out)
    doc = build_document(run, figures=figs)
    return {"run": run, "doc": doc, "html": render_html_string(doc), "figures": figs, "out": out}


def table_rows(page: str, caption: str) -> list[list[str]]:
    """The rows of the HTML table with ``caption``: each cell's text (its value and interval, tags removed)."""
    table = next(t for t in re.findall(r"<table.*?</table>", page, flags=re.S) if f"<caption>{caption}<" in t)
    body = table.split("<tbody>", 1)[1]
    return [[html.unescape(re.sub(r"<[^>]+>", " ", c)).split() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
            for tr in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)]


def words(text: str) -> str:
    """``text`` with every run of white space (narrow no-break spaces too) as one space, as ``table_rows`` gives."""
    return " ".join(text.split())


def test_the_html_shows_the_numbers_scikit_learn_gives(rendered_perf, heart_perf):
    rows = {" ".join(r[0]): [" ".join(c) for c in r[1:]] for r in table_rows(rendered_perf["html"], CAPTION)}
    labels = heart_perf["labels"]
    masks = {"All records": np.ones(heart_perf["y"].size, dtype=bool),
             "Female": labels["sex"] == "Female", "Male": labels["sex"] == "Male",
             "<55": labels["age_band"] == "<55", "Female & <55": labels["sex & age_band"] == "Female & <55"}
    for name, m in masks.items():
        y, p, s = heart_perf["y"][m], heart_perf["pred"][m], heart_perf["s"][m]
        (tn, fp), (fn, tp) = skm.confusion_matrix(y, p, labels=[0, 1])
        cells = rows[name]
        assert cells[0] == fmt.count(m.sum())
        assert cells[1].startswith(words(fmt.pct(y.mean())) + " (95 % CI ")
        assert cells[2:6] == [fmt.count(v) for v in (tp, fp, tn, fn)]
        assert cells[6].startswith(words(fmt.pct(skm.accuracy_score(y, p))) + " (95 % CI ")
        if min(y.sum(), (1 - y).sum()) >= 30:
            assert cells[7].startswith(fmt.num(skm.roc_auc_score(y, s)) + " (95 % CI ")
        else:
            assert cells[7] == f"too few {min(y.sum(), (1 - y).sum())} in the smaller class"
    assert rows["All records"][:7] == ["230", "53 % (95 % CI 47–60 %)", "107", "14", "93", "16",
                                       "87 % (95 % CI 82–91 %)"]
    assert rows["All records"][7] == "0.92 (95 % CI 0.89–0.96)"
    # the group below the minimum and the row the suppression transform emptied show no figure of theirs
    assert rows["Female & 55+"] == ["suppressed"] and rows["Male & <55"] == ["suppressed"]
    assert [" ".join(r[0]) for r in table_rows(rendered_perf["html"], CAPTION)][1] == "By sex"


def test_threshold_and_methods_in_plain_words(rendered_perf):
    section = next(s for s in rendered_perf["doc"].sections if s.key == "performance")
    assert section.title == "Performance and calibration" and section.number == 10
    text = [b.text for b in section.blocks if b.kind == "paragraph"]
    assert text[0].startswith("Decision threshold: a record is predicted “yes” when the model's probability of "
                              "“yes” is above 0.50")
    assert ("Intervals at 95\u202f%: Wilson for prevalence and accuracy, DeLong for AUROC, a bootstrap (100 resamples "
            "of the group's records, percentile interval shifted by the bootstrap's estimate of the bias; its seed is "
            "in the findings) for the calibration error.") in text[2]
    run = copy.deepcopy(rendered_perf["run"])
    run["fairness"]["performance"].update(threshold=None, n_classes=3)
    doc = build_document(run)
    section = next(s for s in doc.sections if s.key == "performance")
    assert section.blocks[0].text.startswith("Decision rule: the model has 3 classes and predicts the most probable "
                                             "one. “yes” is read against all other classes together (one-vs-rest)")
    run["fairness"]["performance"] = None
    section = next(s for s in build_document(run).sections if s.key == "performance")
    assert [b.text for b in section.blocks] == ["This run document holds no performance and calibration results "
                                                "(the auditkit version that wrote it did not measure them)."]


def test_reliability_diagram_colours_match_its_caption(rendered_perf):
    assert rendered_perf["figures"]["reliability"] == "figures/reliability.svg"
    figure = next(b for b in next(s for s in rendered_perf["doc"].sections if s.key == "performance").blocks
                  if b.kind == "figure")
    assert figure.caption.endswith("Left: all records (black). Right: by sex (blue: Female; orange: Male).")
    svg = (rendered_perf["out"] / "figures/reliability.svg").read_text().lower()
    for hexcode in (GROUP_COLOURS[0][1].lower(), GROUP_COLOURS[1][1].lower()):
        assert f"stroke: {hexcode}" in svg and f"fill: {hexcode}" in svg
    assert f"stroke: {GROUP_COLOURS[2][1].lower()}" not in svg      # no third series drawn
    # each panel's series (the dashed diagonal aside) in the colours the caption names, markers likewise
    fig = reliability_figure(Performance.model_validate(rendered_perf["run"]["fairness"]["performance"]))
    left, right = fig.axes
    series = [[(to_hex(line.get_color()), line.get_label()) for line in ax.lines if line.get_linestyle() == "-"]
              for ax in (left, right)]
    assert series == [[("#000000", "all records")], [("#0072b2", "Female"), ("#e69f00", "Male")]]
    assert [to_hex(c.get_facecolor()[0]) for c in right.collections] == ["#0072b2", "#e69f00"]
    # the palette is the one of the other figures (Okabe-Ito)
    assert (GROUP_COLOURS[0][1], GROUP_COLOURS[1][1], GROUP_COLOURS[2][1], GROUP_COLOURS[3][1],
            GROUP_COLOURS[4][1]) == (figures.BLUE, figures.ORANGE, figures.GREEN, figures.PURPLE, figures.RED)
    assert OVERALL_COLOUR == ("black", "#000000")


def test_reliability_tick_labels_do_not_overlap(rendered_perf):
    import matplotlib

    perf = Performance.model_validate(rendered_perf["run"]["fairness"]["performance"])
    with matplotlib.rc_context(figures.RC):
        fig = reliability_figure(perf)
        FigureCanvasAgg(fig)
        renderer = fig.canvas.get_renderer()
        fig.draw(renderer)
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                boxes = [t.get_window_extent(renderer) for t in axis.get_ticklabels() if t.get_visible()
                         and t.get_text()]
                assert len(boxes) in (0, 5)       # the right panel shares the left one's y labels
                assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
