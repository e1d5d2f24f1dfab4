"""Figures: the expected files, byte-for-byte deterministic, index-based names, hostile labels printed."""

from __future__ import annotations

import copy
from xml.etree import ElementTree

from auditkit.report import render_figures

EXPECTED = {f"group_metrics_{i}" for i in (1, 2, 3)} | {f"drivers_{i}" for i in range(1, 10)} | {
    "risk_distribution", "roc"}


def test_figure_files_and_names(sample_run, tmp_path):
    out = render_figures(sample_run, tmp_path)
    assert set(out) == EXPECTED
    for name, rel in out.items():
        path = tmp_path / rel
        assert rel == f"figures/{name}.svg"
        assert path.is_file() and path.stat().st_size > 5_000
        head = path.read_bytes()[:400]
        assert b"<svg" in head or b"<?xml" in head
        assert b"<dc:date>" not in path.read_bytes()


def test_figures_are_deterministic(sample_run, tmp_path):
    a = render_figures(sample_run, tmp_path / "a")
    b = render_figures(sample_run, tmp_path / "b")
    assert a == b
    for rel in a.values():
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_hostile_labels_do_not_break_figures_or_names(hostile_run, tmp_path):
    out = render_figures(hostile_run, tmp_path)
    assert set(out) == EXPECTED  # names never come from user strings
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(f"{n}.svg" for n in EXPECTED)
    for rel in out.values():
        root = ElementTree.parse(tmp_path / rel).getroot()
        for el in root.iter():
            assert el.tag.split("}")[-1] not in {"script", "image", "foreignObject", "img", "a"}, rel
            for key, value in el.attrib.items():
                assert "127.0.0.1" not in value and "/etc/passwd" not in value, (rel, value)
                if key.endswith("href"):
                    assert value.startswith("#"), (rel, value)  # only references inside the file


def test_suppressed_groups_are_left_out_of_the_group_figure(sample_run, tmp_path):
    run = copy.deepcopy(sample_run)
    for g in run["fairness"]["groups"][0]["groups"]:
        g["sufficient"] = False
    out = render_figures(run, tmp_path)
    assert "group_metrics_1" not in out and "group_metrics_2" in out


def test_missing_parts_give_no_figure(sample_run, tmp_path):
    run = copy.deepcopy(sample_run)
    run["privacy"] = None
    run["fairness"]["attributions"] = []
    out = render_figures(run, tmp_path)
    assert set(out) == {"group_metrics_1", "group_metrics_2", "group_metrics_3"}
