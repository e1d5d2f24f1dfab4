"""Hostile strings in record ids, group labels and column names: escaped in the report, never fetched."""

from __future__ import annotations

import json

import pandas as pd
import yaml
from report_fixtures import pdf_text
from test_cli import make_config

from auditkit.cli import main


def test_hostile_strings_are_escaped_and_nothing_is_fetched(tmp_path, listener):
    url, hits = listener
    script = '<script>alert("x")</script>'
    female = f'Female{script}'
    male = f'Male{{{{ 7*7 }}}}<img src="{url}/label.png">'
    column = f'chest<img src="{url}/column.png">{{{{ 7*7 }}}}'
    config = make_config(tmp_path, edit=lambda d: (
        d["data"].update(features=[column if c == "cp" else c for c in d["data"]["features"]],
                         categorical=[column if c == "cp" else c for c in d["data"]["categorical"]]),
        d.update(history=False)))
    table = pd.read_csv(tmp_path / "patients.csv")
    table["sex"] = table["sex"].map({"Female": female, "Male": male})
    table["id"] = [f'<img src="{url}/id-{i}.png">file:///etc/passwd{i:05d}' for i in range(len(table))]
    table = table.rename(columns={"cp": column})
    table.to_csv(tmp_path / "patients.csv", index=False)

    assert main(["run", str(config), "--out", str(tmp_path / "r"), "--quiet"]) in (0, 1)
    html = (tmp_path / "r/report.html").read_text()
    assert script not in html and "&lt;script&gt;" in html
    assert f'<img src="{url}' not in html and "127.0.0.1" in html        # present, as text only
    assert "{{ 7*7 }}" in html or "{{ 7*7 }}".replace(" ", "") in html  # data is never evaluated as a template
    for name in ("report.html", "run.json", "findings.json"):
        assert "file:///etc/passwd0" not in (tmp_path / "r" / name).read_text(), name   # no record id
    assert hits == []                                                       # the renderer fetched nothing
    text = pdf_text(tmp_path / "r/report.pdf")
    assert "alert" in text                                                  # shown as text
    assert "passwd0" not in text
    flagged = pd.read_csv(tmp_path / "r/flagged_records.csv")
    assert flagged["record_id"].str.contains("passwd").all()                # ids only in the private file
    assert json.loads((tmp_path / "r/findings.json").read_text())["fairness"]["groups"][0]["groups"][0]["group"] \
        == female
    assert yaml.safe_load(config.read_text())["data"]["features"][3] == column   # the column was in use
