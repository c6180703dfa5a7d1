"""The benchmark's building-block floor does the real work it claims (bench/floor.py).

It is only a yardstick, but a yardstick that skipped work would flatter every goal: its decrypt
must authenticate every value of a secretops-encrypted file (a wrong key path fails AES-GCM), and
its encrypt must select the same values as the ``--encrypted-regex`` it is given.
"""

from __future__ import annotations

import re

import pytest
from cryptography.exceptions import InvalidTag

import secretops
from bench import floor
from tests.helpers import AgeKey

SECRET = """apiVersion: v1
kind: Secret
metadata:
  name: db
data:
  user: YWRtaW4=
  nested:
    deeper: [x, y]
stringData:
  password: s3cret  # a comment
sops_like: not the metadata
"""


def test_floor_decrypt_authenticates_every_value(age_key: AgeKey) -> None:
    enc = secretops.encrypt(SECRET.encode(), format="yaml", age=[age_key.recipient],
                            encrypted_regex="^(data|stringData)$").decode()
    assert floor.decrypt(enc, str(age_key.path)) == 4
    tampered = enc.replace("data:\n  user:", "data:\n  usr:", 1)
    with pytest.raises(InvalidTag):  # the key path is the associated data
        floor.decrypt(tampered, str(age_key.path))


def test_floor_encrypt_selects_like_the_rule(age_key: AgeKey) -> None:
    rule = re.compile("^(data|stringData)$")
    selected = [aad for aad, _, sel in floor.values(SECRET, rule) if sel]
    assert selected == ["data:user:", "data:nested:deeper:", "data:nested:deeper:",
                        "stringData:password:"]
    assert floor.encrypt(SECRET, age_key.recipient, rule) == 4
    assert floor.encrypt(SECRET, age_key.recipient, None) == 8  # every value
