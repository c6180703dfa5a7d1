"""Fuzzing the ``sops:`` metadata and the ENC values: typed errors only, and no hangs.

Every mutated file (see :mod:`tests.fuzz.strategies`) goes through the readers a hostile
file reaches: ``decrypt``, the textconv driver, the pre-commit check and the merge driver's
"is it encrypted" test. Each must return or raise a :class:`SecretOpsError` (textconv must
return text); anything else is a bug. Derandomized like the rest of the suite; the deadline is
a per-input hang guard (the cubic ENC parser took 14 s on one 9 KB value), not a speed test.
A longer run: ``HYPOTHESIS_PROFILE=explore HYPOTHESIS_MAX_EXAMPLES=5000 pytest tests/fuzz``.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, given, settings

from secretops import api
from secretops.errors import SecretOpsError
from secretops.git.guard import check_data
from secretops.git.merge import is_sops_file
from secretops.git.textconv import textconv
from tests.fuzz.strategies import KEY_FILE, mutated_files
from tests.helpers import CANARY

DEADLINE = timedelta(seconds=5)


def _env() -> dict[str, str]:
    return {"HOME": os.environ["HOME"], "SOPS_AGE_KEY_FILE": str(KEY_FILE)}


@settings(deadline=DEADLINE, max_examples=300, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(mutated_files())
def test_mutated_metadata_and_values_give_typed_errors(case: tuple[str, str, bytes]) -> None:
    _, fmt, data = case
    env = _env()
    try:
        api.decrypt(data, format=fmt, env=env)
    except SecretOpsError as e:
        assert CANARY not in str(e)
    name = f"f.{fmt}"
    out = textconv(data, name, env)
    assert isinstance(out, bytes)
    check_data(name, data, fmt=fmt)
    is_sops_file(data, fmt)
