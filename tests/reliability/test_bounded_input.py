"""Input at the edges: integers beyond their ranges, YAML built to hang or crash a reader, one bad value in any of
the three splits, and numeric record ids quoted in the configuration. Each is refused with exit 2 and one line
naming the cause (before any work), or, where legal, carried through the whole audit as promised.
"""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
from reliability_support import assert_one_line_refusal, make_case, report_html, snapshot, text_of

from auditkit.cli import main
from auditkit.config import load_config
from auditkit.inputs import _frames, load_data, split_seed
from auditkit.runner import audit

N_RECORDS = 920                                            # the example's table; split test 0.25, holdout 0.2, seed 0


def _refused_run(config, capsys, expected):
    """``auditkit run`` refuses with exactly ``expected`` and writes nothing."""
    before = snapshot(config.parent)
    code = main(["run", str(config), "--out", str(config.parent / "runs/report"), "--quiet"])
    assert assert_one_line_refusal(code, capsys.readouterr().err, []) == expected
    assert snapshot(config.parent) == before


# ------------------------------------------------------------------------------------------- integers

@pytest.mark.parametrize("edit, expected", [
    (lambda d: d.update(seed=2**70),
     "seed: Input should be less than or equal to 18446744073709551615 (got 1180591620717411303424)"),
    (lambda d: d["data"]["split"].update(seed=-5),
     "data.split.seed: Input should be greater than or equal to 0 (got -5)"),
    (lambda d: d["audits"]["fairness"].update(seed=-1), None),
    (lambda d: d["audits"]["fairness"].update(bootstrap=10**12), None),
    (lambda d: d["influence"].update(chunk_size=2**40),
     "influence.chunk_size: Input should be less than or equal to 2147483647 (got 1099511627776)"),
    (lambda d: d.update(seed=list(range(2_000))),         # a long value is shown shortened
     "seed: Input should be a valid integer (got [0, 1, 2, 3, ...])"),
])
def test_integers_beyond_their_range_are_refused_before_any_work(edit, expected, tmp_path, capsys):
    config = make_case(tmp_path, edit=edit)
    if expected is None:                                   # plugin options: the plugin's own message
        code = main(["run", str(config), "--out", str(tmp_path / "runs/report"), "--quiet"])
        message = assert_one_line_refusal(code, capsys.readouterr().err, ["options of audit 'fairness': "])
        assert re.search(r"(seed: Input should be greater than or equal to 0 \(got -1\)|bootstrap: Input should be "
                         r"less than or equal to 100000 \(got 1000000000000\))$", message), message
        return
    _refused_run(config, capsys, f"{config}: {expected}")


# ------------------------------------------------------------------------------------------- YAML

def _laughs(levels=9):
    """A "billion laughs" document: nine aliases of nine aliases ... (9^levels values), a few hundred bytes."""
    names = [f"l{i}" for i in range(levels)]
    lines = [f'{names[0]}: &{names[0]} ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"{n}: &{n} [" + ", ".join([f"*{p}"] * 9) + "]" for p, n in zip(names, names[1:], strict=False)]
    return "\n".join(lines) + "\n", f"*{names[-1]}"


@pytest.mark.parametrize("damage, expected", [
    ("laughs", "is refused at line 1, column 1: the document expands to more than 100,000 values (aliases of "
               "aliases): write the values out"),
    ("lists", "is refused at line {line}, column 71: lists and mappings nested more than 64 levels deep: flatten the "
              "document"),
    ("mappings", "is refused at line {line}, column 257: lists and mappings nested more than 64 levels deep: flatten "
                 "the document"),
    ("huge", "is refused: 2,097,152 characters, more than the 1,048,576 a configuration may have: is it the right "
             "file?"),
])
def test_yaml_built_to_hang_or_crash_the_reader_is_refused_at_once(damage, expected, tmp_path, capsys):
    config = make_case(tmp_path)
    text = config.read_text()
    line = text.count("\n") + 1
    if damage == "laughs":
        head, alias = _laughs()
        text = head + re.sub(r"(?m)^seed: 0$", f"seed: {alias}", text)
    elif damage == "lists":
        text += "extra: " + "[" * 5000 + "]" * 5000 + "\n"
    elif damage == "mappings":
        text += "extra: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n"
    else:
        text += "#" * (2 * 2**20 - len(text) - 1) + "\n"
    config.write_text(text)
    started = time.monotonic()
    _refused_run(config, capsys, f"configuration file {str(config)!r} " + expected.format(line=line))
    assert time.monotonic() - started < 5                 # 9^9 values are never expanded (nor rendered)


# ------------------------------------------------------------------------------------------- every split alike

def _rows() -> dict[str, list[int]]:
    """The rows of the example's table in each split (as auditkit splits it: seeded permutation)."""
    order = np.random.default_rng(0).permutation(N_RECORDS)
    return {"test": sorted(order[:230]), "holdout": sorted(order[230:414]), "train": sorted(order[414:])}


def _one_cell(column, row, value):
    def table(frame):
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame
    return table


ROW = {split: int(rows[5]) for split, rows in _rows().items()}
WHERE = "in the {split} split, the first in row {row} of its table (0-based, header not counted)"
CASES = [
    ("decimal-comma", "trestbps", "1,5",
     "feature column 'trestbps' holds numbers but 1 value(s) that are not numbers " + WHERE + ": '1,5': correct "
     "those values (a decimal point, not a comma) or leave them empty, or add it to data.categorical "
     "(TabularFeaturizer categorical=) to treat it as categories"),
    ("beyond-int64", "age", 99999999999999999999,
     "feature column 'age' holds 1 integer(s) beyond the 64-bit range " + WHERE + ": '99999999999999999999': "
     "correct them, or rescale the column (e.g. other units)"),
    ("unseen-category", "cp", "martian",
     "categorical feature column 'cp' has 1 value(s) in the {split} split that the train split does not have, the "
     "first in row {row} of its table (0-based, header not counted): 'martian' (train has 4 level(s)): the model has "
     "no input for them; add such records to the train split, map them to a level it has, or leave them empty"),
]


@pytest.mark.parametrize("split", ["train", "test", "holdout"])
@pytest.mark.parametrize("name, column, value, expected", CASES, ids=[c[0] for c in CASES])
def test_one_bad_value_is_named_the_same_way_in_every_split(name, column, value, expected, split, tmp_path, capsys):
    if name == "unseen-category" and split == "train":
        pytest.skip("the train split defines the categories")
    config = make_case(tmp_path, table=_one_cell(column, ROW[split], value))
    loaded = load_config(config)
    frames = _frames(loaded.data, None, loaded.path, split_seed(loaded.data, loaded.seed))[0]
    assert ROW[split] in frames[split].index                                # the row is in that split
    assert main(["validate", str(config)]) == 2
    message = assert_one_line_refusal(2, capsys.readouterr().err, [])
    assert message == expected.format(split=split, row=ROW[split])


def test_a_bad_value_in_the_test_split_stops_the_run_before_the_model_is_used(tmp_path, capsys, monkeypatch):
    config = make_case(tmp_path, table=_one_cell("trestbps", ROW["test"], "1,5"))
    monkeypatch.setattr("auditkit.runner.build_checked_model", lambda *a, **k: pytest.fail("the model was built"))
    _refused_run(config, capsys, CASES[0][3].format(split="test", row=ROW["test"]))


# ------------------------------------------------------------------------------------------- a whole run

def test_numeric_ids_and_the_largest_seed_through_a_whole_audit(tmp_path):
    """Record ids that are numbers, named in ``explain.records`` (as YAML integers) and in a comment, never appear in
    the report's copy of the configuration, in run.json or in the HTML annex; the largest seed, 2**64-1, runs."""
    ids = [str(482_130_000 + 7 * i) for i in range(N_RECORDS)]

    def edit(doc):
        doc.update(seed=2**64 - 1, history=False, policy=None)
        doc["data"]["sensitive"] = doc["data"]["sensitive"][:1]
        doc["audits"] = {"fairness": {"bootstrap": 20, "intersections": []}}

    config = make_case(tmp_path, edit=edit, table=lambda f: f.assign(id=ids))
    test_ids = [str(i) for i in load_data(load_config(config)).splits["test"].ids[:2]]
    text = config.read_text().replace("    intersections: []", f"    intersections: []\n    explain:\n      records: "
                                                            f"[{test_ids[0]}, {test_ids[1]}]", 1)
    config.write_text(text + f"# patient {test_ids[0]} was re-examined; see also {test_ids[1]}.\n")

    run = audit(config).run.to_json_dict()
    assert run["influence"]["seed"] == 2**64 - 1
    annex = run["provenance"]["config_text"]
    whole = re.compile(r"(?<![\w.\-])(" + "|".join(test_ids) + r")(?!\w|\.\d)")
    assert whole.findall(json.dumps(run)) == []
    assert whole.findall(text_of(report_html(run))) == []
    tokens = re.findall(r"records: \[(R-\w{8}), (R-\w{8})\]", annex)
    assert tokens and re.search(rf"# patient {tokens[0][0]} was re-examined; see also {tokens[0][1]}\.", annex)


def test_numeric_ids_are_tokenised_in_text_and_settings_keep_their_numbers():
    from types import SimpleNamespace

    from auditkit.redaction import redact_record_ids

    splits = {"train": SimpleNamespace(ids=["55", "920", "007", "12"]), "test": SimpleNamespace(ids=["17", "18"])}
    text = ("data:\n  sensitive: [{column: age_band, from: age, bands: [55]}]  # 55 years\n"
            "report: {population: \"920 patients; case 007 (see 12.) and 12.5 mg, v12, 1920\"}\n"
            "audits:\n  fairness:\n    bootstrap: 920\n    explain: {records: [17, '18']}\n"
            "# patients 17 and (18) were re-examined; 007-b is not 007\n")
    out = redact_record_ids(text, splits, lambda split, i: f"R-{split[:2].upper()}{i}")
    assert out == ("data:\n  sensitive: [{column: age_band, from: age, bands: [55]}]  # R-TR0 years\n"
                   "report: {population: \"R-TR1 patients; case R-TR2 (see R-TR3.) and 12.5 mg, v12, 1920\"}\n"
                   "audits:\n  fairness:\n    bootstrap: 920\n    explain: {records: [R-TE0, R-TE1]}\n"
                   "# patients R-TE0 and (R-TE1) were re-examined; R-TR2-b is not R-TR2\n")
