"""Security properties, each shown with a live attack: the hostile input would do harm under the unsafe
alternative (the control), and auditkit refuses it without running, importing, fetching or reading anything.

- weights are read with ``weights_only=True``: a pickle whose ``__reduce__`` runs a command is refused;
- YAML (configuration and policies) is read safely: a ``!!python/object/apply`` tag is refused;
- plugins are found by registered name only, and a policy can never cause a module to be imported;
- templates escape everything, the user's own templates too;
- the PDF renderer fetches nothing from the network and opens no file outside the report's folder;
- the flagged-records file is created 0600 whatever the umask.
"""

from __future__ import annotations

import os
import secrets
import stat
import sys
import threading

import pytest
import torch
import yaml
from reliability_support import make_case

from auditkit.config import load_config
from auditkit.errors import InputError
from auditkit.models import load_state_dict
from auditkit.policy import evaluate, load_policy
from auditkit.report import build_document
from auditkit.report.html import render_html_string
from auditkit.report.pdf import AssetFetcher, render_pdf
from auditkit.runner import check_config
from auditkit.writer import write_flagged_csv


class Bomb:
    """Unpickling it runs ``touch MARKER``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_weights_file_with_pickled_code_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2, 3), "bias": Bomb(marker)}, path)   # torch's own zip format
    with pytest.raises(InputError, match=r"is not a weights file torch can load safely \(UnpicklingError"):
        load_state_dict(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)                                     # control: the bomb is live
    assert marker.exists()


@pytest.mark.parametrize("loader", ["configuration", "policy"])
def test_yaml_with_a_python_tag_is_refused_unexecuted(loader, tmp_path):
    marker = tmp_path / "PWNED"
    text = f"policy: !!python/object/apply:os.system ['touch {marker}']\nmodel: x\n"
    path = tmp_path / "file.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(path) if loader == "configuration" else load_policy(str(path))
    assert not marker.exists()
    yaml.unsafe_load(text)                                                   # control: the tag is live
    assert marker.exists()


@pytest.fixture
def sentinel(tmp_path, monkeypatch):
    """An importable module that leaves a marker file when (and only when) it is imported."""
    name = f"ak_sentinel_{secrets.token_hex(4)}"
    marker = tmp_path / "IMPORTED"
    (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n"
                                         "class Plugin:\n    name = 'x'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, marker
    sys.modules.pop(name, None)


def test_a_policy_can_never_import_code(sentinel, tmp_path):
    name, marker = sentinel
    rule = {"id": f"{name}-rule", "metric": "privacy.loss.auc", "bound": {"kind": "absolute", "max": 0.6},
            "severity": "fail", "requirement": f"{name}:Plugin", "description": f"import {name}"}
    valid = {"policy": name, "title": f"{name}:Plugin", "description": f"__import__('{name}')",
             "references": [f"{name}.Plugin"], "rules": [rule]}
    (tmp_path / "valid.yaml").write_text(yaml.safe_dump(valid))
    policy = load_policy(str(tmp_path / "valid.yaml"))                   # module names as text: just text
    evaluate(policy, [{"metric": "privacy.loss.auc", "value": 0.5, "n": 100}])
    hostile = [{**valid, "rules": [{**rule, "metric": f"{name}:Plugin"}]},          # a metric naming code
               {**valid, "rules": [{**rule, "plugin": f"{name}:Plugin"}]},          # a field asking for code
               {**valid, "loader": f"{name}:Plugin"}]
    for i, doc in enumerate(hostile):
        (tmp_path / f"hostile{i}.yaml").write_text(yaml.safe_dump(doc))
        with pytest.raises(InputError, match="not a known metric id|unknown field"):
            load_policy(str(tmp_path / f"hostile{i}.yaml"))
    assert not marker.exists() and name not in sys.modules
    __import__(name)                                                         # control: importing it leaves the mark
    assert marker.exists()


@pytest.mark.parametrize("plugin", ["{name}", "{name}:Plugin", "{name}.Plugin"])
def test_plugins_are_found_by_registered_name_only(plugin, sentinel, tmp_path):
    name, marker = sentinel
    config = load_config(make_case(tmp_path, edit=lambda d: d["audits"].update({plugin.format(name=name): {}})))
    with pytest.raises(InputError, match=r"is not installed: available plugins are \['data_quality', 'fairness', "
                                         r"'privacy'\]"):
        check_config(config)
    assert not marker.exists() and name not in sys.modules


def test_user_templates_are_escaped_too(sample_run, tmp_path):
    """Autoescape belongs to the environment, not to the packaged templates: a user's own template printing
    a hostile organisation name gets it escaped as well."""
    run = {**sample_run, "scope": {**sample_run["scope"], "organisation": '<script>alert(1)</script><img src=x>'}}
    (tmp_path / "report.html.j2").write_text("<p>{{ doc.organisation }}</p>")
    html = render_html_string(build_document(run), templates=tmp_path)
    assert html == "<p>&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x&gt;</p>"


OPENED: list[str] = []
_RECORDING = threading.Event()


def _audit(event, args):
    if _RECORDING.is_set() and event == "open" and args and isinstance(args[0], str | bytes | os.PathLike):
        OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)   # records only while a test sets _RECORDING


def test_the_pdf_renderer_neither_requests_nor_reads_anything_outside_the_report(tmp_path, listener):
    url, hits = listener
    secret = tmp_path / "secret.txt"
    secret.write_text("patient list")
    (tmp_path / "secret.png").symlink_to(secret)
    report = tmp_path / "report"
    report.mkdir()
    (report / "figures").mkdir()
    (report / "figures" / "ok.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg' width='4' height='4'/>")
    (report / "link.png").symlink_to(secret)
    (report / "report.html").write_text(
        f'<html><head><link rel="stylesheet" href="{url}/x.css"><link rel="stylesheet" href="../secret.txt">'
        f'<style>@import url("{url}/i.css"); p {{ background: url("{secret.as_uri()}") }}</style></head><body>'
        f'<img src="{url}/evil.png"><img src="{secret.as_uri()}"><img src="../secret.png"><img src="link.png">'
        f'<img src="file:///etc/passwd"><img src="figures/ok.svg"><p>text</p></body></html>')
    fetcher = AssetFetcher(report)
    OPENED.clear()
    _RECORDING.set()
    try:
        render_pdf(report / "report.html", report / "report.pdf", fetcher=fetcher)
    finally:
        _RECORDING.clear()
    assert hits == []                                                        # no request reached the server
    outside = [p for p in OPENED if os.path.realpath(p) in (str(secret), "/etc/passwd")]
    assert outside == []                                                     # the secret was never opened
    assert len(fetcher.refused) == 8 and [u.rsplit("/", 1)[-1] for u in fetcher.served] == ["ok.svg"]
    assert (report / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert OPENED, "the audit hook saw the renderer's own files (it was really recording)"


def test_the_flagged_records_file_is_0600_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        write_flagged_csv([{"token": "R-AAAAAAAA", "record_id": "mrn0123456789ab"}], tmp_path / "f.csv")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "f.csv").stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):                                     # never written through another file
        write_flagged_csv([], tmp_path / "f.csv")


def test_record_ids_named_by_the_configuration_are_replaced_by_tokens():
    """``records:`` lists (numbers included) and every id anywhere in text, comments included, whatever its type
    (numbers as whole numbers, never a part of another one); a setting's own number (the band edge 55, while a
    record's id is 55) stays."""
    from types import SimpleNamespace

    from auditkit.redaction import redact_record_ids

    splits = {"train": SimpleNamespace(ids=["55", "mrn00aa", "mrn00bb"]),
              "test": SimpleNamespace(ids=["17", "mrn00cc"])}
    text = ("data:\n  sensitive: [{column: age_band, from: age, bands: [55]}]\naudits:\n  fairness:\n"
            "    explain: {records: [17, \"mrn00cc\", nobody]}\n# mrn00aa looked odd; see also mrn00bb\n")
    out = redact_record_ids(text, splits, lambda split, i: f"R-{split[:2].upper()}{i}")
    assert "bands: [55]" in out                                   # a setting, not taken for record 55
    assert "records: [R-TE0, R-TE1, nobody]" in out               # test records by their tokens
    assert "# R-TR1 looked odd; see also R-TR2" in out            # ids in comments too
    assert "mrn" not in out
    assert redact_record_ids("records: [", splits, lambda *a: "R") == "records: ["   # broken YAML: text scan only
