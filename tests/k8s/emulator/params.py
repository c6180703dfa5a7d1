"""Query parameters typed as the apiserver's parameter codec types them.

The apiserver decodes ``ListOptions`` / ``DeleteOptions`` from the query with apimachinery's
conversions: int64 fields with ``strconv.ParseInt`` (``timeoutSeconds=300.0`` is a 400), bools as
"anything but empty, ``0`` or ``false``" (``Convert_Slice_string_To_bool``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import errors

# The int64 query parameters of ListOptions / DeleteOptions. The apiserver decodes them with
# strconv.ParseInt (apimachinery's Convert_Slice_string_To_int64): "300.0" is a 400, not 300.
INT_PARAMS = ("timeoutSeconds", "limit", "gracePeriodSeconds")
_GO_INT = re.compile(r"[+-]?[0-9]+")


def typed_query(q: Any) -> None:
    """Refuse what the apiserver's parameter codec refuses, with its message."""
    for name in INT_PARAMS:
        text = q.get(name)
        if not text:
            continue  # an empty value is "not set", as for the pointer fields
        why = "invalid syntax" if not _GO_INT.fullmatch(text) else ""
        if not why and not -(2**63) <= int(text) < 2**63:
            why = "value out of range"
        if why:
            raise errors.bad_request(f"strconv.ParseInt: parsing {json.dumps(text)}: {why}")


def go_bool(text: str | None) -> bool:
    """A bool query parameter: set unless empty, ``0`` or (any case) ``false``."""
    return text is not None and text not in ("", "0") and text.lower() != "false"
