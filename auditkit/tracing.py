"""Every record token a run names, traced to its record id and the reason it is named.

The report and ``findings.json`` name training and test records only by random tokens (``R-`` + 8 base-32
characters, :class:`auditkit.audits.base.RecordTokens`). :func:`flagged_rows` lists, for the private
``flagged_records.csv``, one row per place a token is named, with the record's split and id and the reason:

========================  ==========================================================  ==========================
``finding``               reason (example)                                            ``score``
========================  ==========================================================  ==========================
privacy flag              the privacy plugin's reason                                 risk score
data quality suspect      the data-quality plugin's reason                            suspicion score
fairness driver           driver of the selection-rate gap sex Female vs Male         predicted change of the gap
                          (rank 3)                                                    on removal (< 0)
fairness widener          widener of the selection-rate gap sex Female vs Male        predicted change of the gap
                          (rank 1)                                                    on removal (> 0)
flagged gap driver        driver of the false-positive gap sex Male vs Female, which  predicted change of the gap
                          rule fpr-gap flagged (rank 2)                               on removal (< 0)
explained prediction      prediction explained (true label yes, predicted no)         probability of the true
                                                                                      label
explanation: toward       pushed the prediction of R-XLRHR6IR toward the wrong        influence on that record's
wrong / toward right      answer (rank 2)                                             loss (convention of S)
privacy trust check       retrained without it to check its self-influence            predicted loss change
                          (predicted 0.65, actual 0.69)
named in the run          named at <JSON path> (any other place, e.g. a record id of  (empty)
                          the configuration replaced by its token)
========================  ==========================================================  ==========================

Rows come in that order (privacy flags and data-quality suspects first, as before). A record named in two places
has two rows. Strings that look like tokens but were never issued by the run are not records and are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

#: A record token as :class:`auditkit.audits.base.RecordTokens` issues it.
TOKEN = re.compile(r"\bR-[A-Z2-7]{8}\b")
CONFIG_REASON = "its record id is written in the audit configuration (the report prints this token instead)"


def _mapping(tokens) -> dict[str, dict]:
    """token → {"split", "record_id"} from a ``RecordTokens`` (its ``mapping()``) or an iterable of such rows."""
    rows = tokens.mapping() if hasattr(tokens, "mapping") else tokens
    return {r["token"]: r for r in rows}


def _gap(att: Mapping) -> str:
    kind = str(att.get("surrogate", "")).replace("_", "-")
    return f"the {kind} gap {att.get('attribute')} {att.get('disadvantaged')} vs {att.get('advantaged')}"


def _row(entry: Mapping, finding: str, score, reason: str) -> dict:
    return {"token": entry["token"], "finding": finding, "score": "" if score is None else score,
            "label": entry.get("label", entry.get("true_label", "")), "groups": entry.get("groups") or {},
            "reason": reason}


def _privacy(privacy: Mapping) -> Iterable[dict]:
    for f in privacy.get("flags") or []:
        yield _row(f, "privacy flag", f.get("risk"), f.get("reason", ""))


def _quality(quality: Mapping) -> Iterable[dict]:
    for s in quality.get("suspects") or []:
        yield _row(s, "data quality suspect", s.get("score"), s.get("reason", ""))


def _fairness(fairness: Mapping) -> Iterable[dict]:
    for att in fairness.get("attributions") or []:
        for key, finding in (("drivers", "fairness driver"), ("wideners", "fairness widener")):
            for rank, e in enumerate(att.get(key) or [], 1):
                yield _row(e, finding, e.get("effect"), f"{finding.split()[1]} of {_gap(att)} (rank {rank})")
    for gap in fairness.get("flagged_gaps") or []:
        for rank, e in enumerate(gap.get("drivers") or [], 1):
            yield _row(e, "flagged gap driver", e.get("effect"),
                       f"driver of {_gap(gap)}, which rule {gap.get('rule')} flagged (rank {rank})")
    for ex in fairness.get("explanations") or []:
        yield _row(ex, "explained prediction", ex.get("probability_of_true_label"),
                   f"prediction explained (true label {ex.get('true_label')}, predicted {ex.get('predicted_label')})")
        for key, side in (("toward_wrong", "wrong"), ("toward_right", "right")):
            for rank, e in enumerate(ex.get(key) or [], 1):
                yield _row(e, f"explanation: toward {side}",
                           e.get("effect"), f"pushed the prediction of {ex['token']} toward the {side} answer "
                                            f"(rank {rank})")


def _trust(privacy: Mapping) -> Iterable[dict]:
    for r in (privacy.get("trust") or {}).get("records") or []:
        yield _row(r, "privacy trust check", r.get("predicted"),
                   f"retrained without it to check its self-influence (predicted loss change "
                   f"{r.get('predicted', float('nan')):.3g}, actual {r.get('actual', float('nan')):.3g})")


def _named(document, path: str = "") -> Iterable[tuple[str, str]]:
    """(token, JSON path) of every token-like string anywhere in ``document`` (keys and values)."""
    if isinstance(document, Mapping):
        for k, v in document.items():
            yield from _named(v, f"{path}/{k}")
    elif isinstance(document, (list, tuple)):
        for i, v in enumerate(document):
            yield from _named(v, f"{path}/{i}")
    elif isinstance(document, str):
        for token in TOKEN.findall(document):
            yield token, path or "/"


def flagged_rows(run_findings: Mapping, tokens) -> list[dict]:
    """One row per record token named in ``run_findings`` (a run or its findings, as JSON-like dicts): the token,
    its ``split`` and ``record_id`` (from ``tokens``: the run's ``RecordTokens`` or its ``mapping()``), what
    names it (``finding``), a ``score``, ``label``, ``groups`` and the ``reason`` (see the module docstring).

    Every issued token found anywhere in ``run_findings`` has at least one row."""
    ids = _mapping(tokens)
    privacy = run_findings.get("privacy") or {}
    rows = [*_privacy(privacy), *_quality(run_findings.get("data_quality") or {}),
            *_fairness(run_findings.get("fairness") or {}), *_trust(privacy)]
    rows = [r for r in rows if r["token"] in ids]
    covered = {r["token"] for r in rows}
    seen = set()
    for token, path in _named(run_findings):
        if token in ids and token not in covered and (token, path) not in seen:
            seen.add((token, path))
            reason = (CONFIG_REASON if path.endswith("/config_text") else f"named at {path}")
            rows.append({"token": token, "finding": "named in the run", "score": "", "label": "", "groups": {},
                         "reason": reason})
    for row in rows:
        row["split"], row["record_id"] = ids[row["token"]]["split"], ids[row["token"]]["record_id"]
    return rows
