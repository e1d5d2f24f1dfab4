"""What every typed part of the run document shares (the plugins' findings models too): a strict base model
and the number types. It lives among the audits so that a plugin can declare its findings model without
importing the run document (:mod:`auditkit.rundoc` imports the plugins' models, never the other way).

Numbers are ``float | None``: a statistic that is undefined (NaN) or infinite is written as ``None`` (JSON
``null``), the convention of :func:`auditkit.audits.jsonsafe.json_safe`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


def _finite_or_none(value: Any) -> Any:
    """NaN and ±inf become None; anything else is left to pydantic's own validation."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, list | dict | str):    # numpy scalars
        value = value.item()
        return None if isinstance(value, float) and not math.isfinite(value) else value
    return value


#: a number that may be undefined: NaN and ±inf become None
Num = Annotated[float | None, BeforeValidator(_finite_or_none)]
#: an interval ``[low, high]`` (either end None when undefined)
Interval = list[Num]
#: a record's value of each sensitive attribute, ``{attribute: group}``
Groups = dict[str, str]


class Part(BaseModel):
    """A typed part of the run document: unknown keys are refused, so that drift between the code that writes
    a part and the model that reads it is caught by validation."""

    model_config = ConfigDict(extra="forbid")
