"""The strategies keep their own promises: every input they make is within the bound
(``mutate.MAX_INPUT``), and no mutation fails on what an earlier one left behind. A strategy
that breaks either stops a long run's target early, or reports its own oversized input as a
fault of the product."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import seeds
from tests.fuzz.mutate import MAX_INPUT
from tests.fuzz.strategies import enc_strings, mutated_files, tree_mutations

_SETTINGS = settings(derandomize=True, database=None, deadline=None,
                     suppress_health_check=list(HealthCheck), print_blob=False)

#: ENC values as earlier mutations leave them: a field cut or missing, a ``:`` dropped, a ``,``
#: inside a field (``ENC[AES256_GCM,data:]`` stopped a long run's sops-metadata target)
_LEFT_BEHIND = ["ENC[AES256_GCM,data:]", "ENC[AES256_GCM,]", "ENC[AES256_GCM,data:a,b]",
                "ENC[AES256_GCM,iv:x,tag:y]", "ENC[AES256_GCM,data:,iv:,tag:,type:,extra:1]",
                "ENC[AES256_GCM,data:]]]", "ENC[AES256_GCM,:,::,data]"]


@_SETTINGS
@given(original=st.sampled_from(_LEFT_BEHIND), data=st.data())
def test_enc_strings_mutate_any_enc_value_left_behind(original: str, data: st.DataObject) -> None:
    assert isinstance(data.draw(enc_strings(original)), str)


@settings(_SETTINGS, max_examples=400)
@given(data=st.data())
def test_mutated_files_stay_within_the_bound(data: st.DataObject) -> None:
    _, _, out = data.draw(mutated_files())
    assert len(out) <= MAX_INPUT


#: a manifest whose one list, repeated twice, is over the bound
_BIG_LIST = b"kind: Secret\nitems:\n- " + b"x" * (MAX_INPUT // 2 + 1) + b"\n"


@settings(_SETTINGS, max_examples=100)
@given(data=st.data())
def test_tree_mutations_stay_within_the_bound(data: st.DataObject) -> None:
    out = data.draw(tree_mutations([_BIG_LIST, *seeds.sealed_seeds(), *seeds.eso_seeds()]))
    assert len(out) <= MAX_INPUT
