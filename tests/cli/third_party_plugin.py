"""A third-party audit plugin, as a package outside auditkit would ship it (registered in the tests through a
temporary ``*.dist-info/entry_points.txt`` under the ``auditkit.audits`` group, see test_third_party_plugin.py).

It ranks the training records by the effect of removing each on the mean test loss (the records whose removal
would lower it most first), lists the top ones by token, and declares that ranking to the stability check."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch.nn.functional as F
from pydantic import Field

from auditkit.audits.base import AuditContext, AuditPlugin, InfluenceRequests, PluginOptions, Ranking

KEY = ("third-party", "mean test loss")


def mean_loss(outputs, y):
    """The mean cross-entropy of the test records (the measurement whose influence is ranked)."""
    return F.cross_entropy(outputs, y.long())


class TinyOptions(PluginOptions):
    top: int = Field(5, ge=1)


@dataclass
class TinyFindings:
    mean_test_loss: float
    top: list[str]
    effects: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


class TinyAudit(AuditPlugin):
    """Which training records make the test loss higher (removing them would lower it most)."""

    name = "tiny"
    Options = TinyOptions

    def plan(self, context: AuditContext, options: TinyOptions) -> InfluenceRequests:
        return InfluenceRequests(measures={KEY: (mean_loss, *context.tensor("test"))})

    def run(self, context: AuditContext, options: TinyOptions) -> TinyFindings:
        effect = context.influence_on(KEY, mean_loss, *context.tensor("test"))
        order = np.argsort(effect, kind="stable")[:options.top]
        return TinyFindings(float(context.losses("test").mean()), [context.token("train", int(j)) for j in order],
                            [float(effect[j]) for j in order])

    def rankings(self, findings: dict, context: AuditContext) -> list[Ranking]:
        return [Ranking("records whose removal lowers the test loss most", "tiny_top", lambda measured, _: measured,
                        measure=(KEY, mean_loss, *context.tensor("test")), k=len(findings["top"]))]
