"""One seed drives every random choice: the same seed gives byte-identical findings.json (apart from the run's id
and time, and the record tokens unless their key is given), another seed other bootstrap intervals; the seeds
used are derived from it (``provenance.seeds``), an explicit seed wins; the token key is secret."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml
from conftest import ROOT

from auditkit.config import parse_config
from auditkit.errors import InputError
from auditkit.inputs import load_data, split_seed
from auditkit.runner import audit
from auditkit.seeds import PURPOSES, Seeds, derived_seed
from auditkit.writer import _dump, findings_of

EXAMPLE = ROOT / "examples/heart_disease"
KEY = "a data owner's secret token key"
TOKEN = re.compile(r"R-[A-Z2-7]{8}")


def config_with(seed: int, edit=None):
    """The heart-disease example made cheap (fewer bootstrap samples, two folds, few retrainings), with
    ``seed``; no policy, no history."""
    doc = yaml.safe_load((EXAMPLE / "audit.yaml").read_text())
    doc.update(seed=seed, policy=None, history=False)
    doc["audits"]["fairness"].update(bootstrap=100, intersections=[],
                                     attribution={"surrogates": ["selection_rate"], "verify_k": [5]})
    doc["audits"]["privacy"].update(reference_models=3, trust_top=3)
    doc["audits"]["data_quality"] = {"folds": 2}
    doc["influence"]["stability"] = {"damping_factors": [10.0], "second_solver": "none"}
    if edit:
        edit(doc)
    return parse_config(doc, base_dir=EXAMPLE)


#: durations in the findings: the reference models' and the trust check's time (measured, so never equal twice)
DURATIONS = ("seconds", "seconds_first_model", "seconds_per_model_mean")


def findings_bytes(run: dict, tmp_path, name: str) -> bytes:
    """findings.json as the writer writes it, without the run's id and time and the durations it measured."""
    findings = findings_of(run)
    findings.pop("report_id"), findings.pop("created_utc")
    for key in DURATIONS:
        findings["privacy"]["reference"].pop(key)
    findings["privacy"]["trust"].pop("seconds")
    _dump(findings, tmp_path / name)
    return (tmp_path / name).read_bytes()


@pytest.fixture(scope="module")
def runs():
    """Three runs with the token key given (seed 0 twice, seed 1) and one with a random key (seed 0)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDITKIT_TOKEN_KEY", KEY)
        keyed = [audit(config_with(seed)).run.to_json_dict() for seed in (0, 0, 1)]
        mp.delenv("AUDITKIT_TOKEN_KEY")
        random_key = audit(config_with(0)).run.to_json_dict()
    return (*keyed, random_key)


def test_the_same_seed_gives_byte_identical_findings(runs, tmp_path):
    first, second, _, _ = runs
    assert findings_bytes(first, tmp_path, "a.json") == findings_bytes(second, tmp_path, "b.json")
    assert first["report_id"] != second["report_id"]              # what differs is left out, not equal by chance


def test_a_random_token_key_changes_only_the_tokens(runs, tmp_path):
    first, _, _, random_key = runs
    a, b = (findings_bytes(r, tmp_path, n).decode() for r, n in ((first, "a.json"), (random_key, "b.json")))
    assert TOKEN.findall(a) and not set(TOKEN.findall(a)) & set(TOKEN.findall(b))
    assert len(set(TOKEN.findall(a))) == len(set(TOKEN.findall(b)))
    without = lambda text: json.loads(TOKEN.sub("R-TOKEN", text))                   # noqa: E731
    same, other = without(a), without(b)
    assert same["provenance"].pop("token_key").startswith("the data owner's key from the environment variable "
                                                          "AUDITKIT_TOKEN_KEY")
    assert other["provenance"].pop("token_key").startswith("a random key drawn for this run and kept nowhere")
    assert same == other                                           # everything but the tokens and the key's note
    assert KEY not in json.dumps(first)


def test_another_seed_leaves_the_score_intervals_of_rates_unchanged(runs):
    """The rates' disparities carry Newcombe / MOVER-R intervals, computed from counts: no random choice, so
    another seed changes only the seed recorded (the bootstrap is kept for mean loss and AUC, not computed here)."""
    first, _, other, _ = runs
    intervals = lambda run: [(d["difference_ci"], d["ratio_ci"]) for ds in run["fairness"]["disparities"].values()  # noqa: E731
                             for d in ds if d["status"] == "ok"]
    assert intervals(first) and intervals(first) == intervals(other)
    methods = {d["method"] for ds in first["fairness"]["disparities"].values() for d in ds}
    assert methods == {"newcombe"}
    strip = lambda run: {a: [{k: v for k, v in d.items() if k != "seed"} for d in ds]  # noqa: E731
                         for a, ds in run["fairness"]["disparities"].items()}
    assert strip(first) == strip(other)


def test_the_seeds_used_are_derived_from_the_run_seed(runs):
    first, _, other, _ = runs
    seeds = first["provenance"]["seeds"]
    assert seeds["split"] == 0                                     # data.split.seed given: it wins
    for purpose in ("bootstrap", "privacy", "quality", "stationarity", "solver", "global"):
        assert seeds[purpose] == derived_seed(0, purpose) == int(
            np.random.SeedSequence([0, PURPOSES[purpose]]).generate_state(1, np.uint64)[0]) >> 1
        assert other["provenance"]["seeds"][purpose] == derived_seed(1, purpose) != seeds[purpose]
    assert len(set(seeds.values()) - {0}) == len(seeds) - 1          # independent streams, one per purpose


def test_an_explicit_option_seed_wins_and_is_recorded():
    seeds = Seeds(5)
    assert seeds("bootstrap") == derived_seed(5, "bootstrap")
    assert seeds.record("privacy", 3) == 3 and seeds.used == {"bootstrap": derived_seed(5, "bootstrap"), "privacy": 3}


def test_a_short_token_key_is_refused(monkeypatch):
    monkeypatch.setenv("AUDITKIT_TOKEN_KEY", "short")
    with pytest.raises(InputError) as refused:
        audit(config_with(0))
    assert str(refused.value) == ("AUDITKIT_TOKEN_KEY: the token key has 5 characters: give a secret of at least 16 "
                                  "characters, or unset AUDITKIT_TOKEN_KEY for a random key per run")


def test_the_split_seed_derives_from_the_run_seed_unless_given():
    """``data.split.seed`` unset: the table is split with the seed derived from the run's seed (another run seed,
    another split); set: that seed, whatever the run's seed."""
    unset = lambda seed: config_with(seed, lambda d: d["data"]["split"].pop("seed"))      # noqa: E731
    derived = load_data(unset(3))
    assert {s.split(", split seed ")[1].rstrip(")") for s in derived.sources.values()} == {
        str(derived_seed(3, "split"))}
    ids = lambda loaded: sorted(map(str, loaded.splits["train"].ids))                     # noqa: E731
    assert ids(derived) == ids(load_data(unset(3))) != ids(load_data(unset(4)))
    assert ids(load_data(config_with(3))) == ids(load_data(config_with(4)))               # split seed 0 given
    assert split_seed(config_with(3).data, 3) == 0 and split_seed(unset(3).data, 3) == derived_seed(3, "split")
