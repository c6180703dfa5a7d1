"""Which values get encrypted: sops's suffix, regex and comment-regex rules.

Exactly one rule may be set (sops refuses more). Key rules are checked against **every
component** of a value's path, so ``--encrypted-regex '^data$'`` selects everything below
``data``. Comment rules look at the comments that precede a value in its branches (the
"comments stack"), so a ``# sops:enc`` marker line selects the value after it. This is a line-by-
line port of ``Tree.shouldBeEncrypted`` in sops 3.11.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from secretops.errors import ExitCode, SecretOpsError

DEFAULT_UNENCRYPTED_SUFFIX = "_unencrypted"

RULE_FIELDS = (
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
)


class Selection(NamedTuple):
    """The selection rule of a file (as stored in its metadata) and ``mac_only_encrypted``."""

    unencrypted_suffix: str = ""
    encrypted_suffix: str = ""
    unencrypted_regex: str = ""
    encrypted_regex: str = ""
    unencrypted_comment_regex: str = ""
    encrypted_comment_regex: str = ""
    mac_only_encrypted: bool = False

    @classmethod
    def build(cls, mac_only_encrypted: bool = False, **rules: str | None) -> Selection:
        """Validate user-given rules; with none set, the sops default ``_unencrypted`` suffix."""
        given = {k: v for k, v in rules.items() if v}
        unknown = set(given) - set(RULE_FIELDS)
        if unknown:
            raise TypeError(f"unknown selection rule {sorted(unknown)}")
        if len(given) > 1:
            names = ", ".join("--" + k.replace("_", "-") for k in given)
            raise SecretOpsError(
                f"only one selection rule may be given, got {names}",
                code=ExitCode.CONFLICTING_PARAMETERS,
            )
        if not given:
            given = {"unencrypted_suffix": DEFAULT_UNENCRYPTED_SUFFIX}
        for k, v in given.items():
            if k.endswith("regex"):
                try:
                    re.compile(v)
                except re.error as e:
                    raise SecretOpsError(
                        f"invalid --{k.replace('_', '-')}: {e}",
                        code=ExitCode.CONFLICTING_PARAMETERS,
                    ) from None
        return cls(mac_only_encrypted=mac_only_encrypted, **given)

    @property
    def _compiled(self) -> tuple[re.Pattern[str] | None, ...]:
        return _compile(
            self.unencrypted_regex,
            self.encrypted_regex,
            self.unencrypted_comment_regex,
            self.encrypted_comment_regex,
        )

    @property
    def uses_comments(self) -> bool:
        return bool(self.unencrypted_comment_regex or self.encrypted_comment_regex)

    @property
    def is_default(self) -> bool:
        """True when the rule cannot depend on path or comments (the common fast path)."""
        return (
            not self.uses_comments
            and not self.encrypted_suffix
            and not self.unencrypted_regex
            and not self.encrypted_regex
        )

    def key_matches(self, key: str) -> bool:
        """Does this path component match the (single) key rule?"""
        if self.unencrypted_suffix:
            return key.endswith(self.unencrypted_suffix)
        if self.encrypted_suffix:
            return key.endswith(self.encrypted_suffix)
        pattern = self._compiled[0] or self._compiled[1]
        return pattern is not None and pattern.search(key) is not None

    def decide(self, matched: bool) -> bool:
        """Encrypt a leaf whose path has (``matched``) or has no matching component?

        The same answer as :meth:`should_encrypt` for rules that do not involve comments, but
        computed once per key on the way down instead of once per leaf over its whole path.
        """
        if self.encrypted_suffix or self.encrypted_regex:
            return matched
        return not matched

    def should_encrypt(
        self, path: list[str], comments: list[list[str]], is_comment: bool
    ) -> bool:
        """sops's ``shouldBeEncrypted`` for one leaf at ``path``."""
        unenc_re, enc_re, unenc_c_re, enc_c_re = self._compiled
        encrypted = True
        if self.unencrypted_suffix:
            suffix = self.unencrypted_suffix
            if any(p.endswith(suffix) for p in path):
                encrypted = False
        if self.encrypted_suffix:
            suffix = self.encrypted_suffix
            encrypted = any(p.endswith(suffix) for p in path)
        if unenc_re is not None and any(unenc_re.search(p) for p in path):
            encrypted = False
        if enc_re is not None:
            encrypted = any(enc_re.search(p) for p in path)
        if unenc_c_re is not None and any(unenc_c_re.search(c) for cs in comments for c in cs):
            encrypted = False
        if enc_c_re is not None:
            encrypted = False
            last = len(comments) - 1
            last_len = len(comments[last]) - 1 if comments else -1
            for i, cs in enumerate(comments):
                for j, c in enumerate(cs):
                    # The marker comment itself stays readable; what follows it is encrypted.
                    if is_comment and i == last and j == last_len:
                        continue
                    if enc_c_re.search(c):
                        return True
        return encrypted


@lru_cache(maxsize=32)
def _compile(*patterns: str) -> tuple[re.Pattern[str] | None, ...]:
    return tuple(re.compile(p) if p else None for p in patterns)
