"""Every record token a run names resolves through the private flagged_records.csv, to the right record."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from test_cli import make_config

import auditkit as ak
from auditkit.tracing import CONFIG_REASON, flagged_rows

#: A token as RecordTokens issues it, found independently of auditkit.tracing.
TOKEN = re.compile(r"R-[A-Z2-7]{8}")


def tokens_in(document) -> set[str]:
    """Every token-like string anywhere in a JSON document (keys and values)."""
    return set(TOKEN.findall(json.dumps(document)))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tracing")
    ak.audit(make_config(tmp), tmp / "report")
    report = tmp / "report"
    return {"findings": json.loads((report / "findings.json").read_text()),
            "run": json.loads((report / "run.json").read_text()),
            "flagged": pd.read_csv(report / "flagged_records.csv", dtype=str, keep_default_na=False),
            "scores": pd.read_csv(report / "record_scores.csv", dtype=str, keep_default_na=False),
            "table": pd.read_csv(tmp / "patients.csv", dtype=str).set_index("id")}


def test_every_token_of_findings_and_run_has_a_row_with_its_record(run):
    findings, flagged = run["findings"], run["flagged"]
    named = tokens_in(findings) | tokens_in(run["run"])
    assert len(tokens_in(findings)) > 50                                  # drivers, wideners, explanations, ...
    assert named <= set(flagged["token"])
    # one record per token, and the ids are the data's: each row's label is the record's own label
    assert flagged.groupby("token")["record_id"].nunique().max() == 1
    table = run["table"]
    assert flagged["record_id"].isin(table.index).all()
    labelled = flagged[flagged["label"] != ""]
    assert (table.loc[labelled["record_id"], "disease"].to_numpy() == labelled["label"].to_numpy()).all()
    # training tokens map to the same records as in record_scores.csv (written from the positions directly)
    train = flagged[flagged["split"] == "train"].drop_duplicates("token").set_index("token")["record_id"]
    scores = run["scores"].set_index("token")["record_id"]
    assert len(train) > 50 and (scores.loc[train.index] == train).all()


def test_drivers_are_listed_with_the_gap_they_drive_and_their_rank(run):
    findings, flagged = run["findings"], run["flagged"]
    att = findings["fairness"]["attributions"][0]
    gap = f"{att['surrogate'].replace('_', '-')} gap {att['attribute']} {att['disadvantaged']} vs {att['advantaged']}"
    for rank, driver in enumerate(att["drivers"], 1):
        rows = flagged[(flagged["token"] == driver["token"]) & (flagged["finding"] == "fairness driver")]
        assert f"driver of the {gap} (rank {rank})" in set(rows["reason"])
    # the score of a driver row is its effect, which record_scores.csv holds for the same record
    column = f"driver_score {att['attribute']} {att['surrogate']} ({att['disadvantaged']} vs {att['advantaged']})"
    first = att["drivers"][0]
    score = run["scores"].set_index("token").loc[first["token"], column]
    assert float(score) == pytest.approx(first["effect"], rel=1e-9)
    kinds = set(flagged["finding"])
    assert {"privacy flag", "data quality suspect", "fairness driver", "fairness widener", "explained prediction",
            "explanation: toward wrong", "explanation: toward right"} <= kinds


def test_tokens_outside_the_known_findings_are_traced_by_where_they_are_named():
    mapping = [{"token": "R-AAAAAAAA", "split": "test", "record_id": "p-1"},
               {"token": "R-BBBBBBBB", "split": "train", "record_id": "p-2"}]
    document = {"privacy": {"flags": [{"token": "R-BBBBBBBB", "risk": 2.5, "label": "no", "groups": {"sex": "F"},
                                       "reason": "high"}]},
                "provenance": {"config_text": "records: [R-AAAAAAAA]  # R-ZZZZZZZZ was never issued"},
                "notes": ["R-BBBBBBBB again"]}
    assert flagged_rows(document, mapping) == [
        {"token": "R-BBBBBBBB", "finding": "privacy flag", "score": 2.5, "label": "no", "groups": {"sex": "F"},
         "reason": "high", "split": "train", "record_id": "p-2"},
        {"token": "R-AAAAAAAA", "finding": "named in the run", "score": "", "label": "", "groups": {},
         "reason": CONFIG_REASON, "split": "test", "record_id": "p-1"}]
    document["notes"] = ["see R-AAAAAAAA"]
    document["provenance"] = {}
    assert flagged_rows(document, mapping)[1]["reason"] == "named at /notes/0"
