"""The stable library API: encrypt and decrypt bytes or files in the SOPS format.

::

    import secretops

    enc = secretops.encrypt(b"password: s3cret\\n", format="yaml", age=["age1..."])
    plain = secretops.decrypt(enc, format="yaml")            # identities from the environment
    plain = secretops.decrypt_file("secret.enc.yaml")        # format from the file name

These functions read keys the way the ``secretops`` CLI and sops do (``SOPS_AGE_KEY_FILE``,
``.sops.yaml``, …), take the clock and randomness from the system, and never write files.
Everything else in the package is internal and may change.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from secretops.core.document import seal
from secretops.core.metadata import Metadata
from secretops.core.selection import Selection
from secretops.errors import ExitCode, SecretOpsError
from secretops.fileops import load, now
from secretops.stores import StoreOptions, format_for_path, get_store

if TYPE_CHECKING:
    from secretops.config import Config
    from secretops.keys.specs import KeySpec

__all__ = ["decrypt", "decrypt_file", "encrypt", "encrypt_file"]


_COMMENTS_ONLY = re.compile(rb"(?:\xef\xbb\xbf)?(?:[ \t]*(?:#[^\n]*)?\r?\n)*[ \t]*(?:#[^\n]*)?")


def _as_list(value: Sequence[str] | str | None) -> list[str] | str:
    return value if isinstance(value, str) else list(value or ())


def _config(filename: str | None, env: Mapping[str, str], config: str | None) -> Config | None:
    from secretops.compose import load_config_for

    return load_config_for(filename, env, config)


def _store_options(cfg: Config | None, fmt: str) -> StoreOptions:
    from secretops.compose import store_options

    return store_options(cfg, fmt)


def encrypt(
    data: bytes,
    *,
    format: str | None = None,
    output_format: str | None = None,
    filename: str | None = None,
    age: Sequence[str] | str | None = (),
    key_groups: Sequence[Sequence[KeySpec]] | None = None,
    shamir_threshold: int = 0,
    mac_only_encrypted: bool | None = None,
    config: str | None = None,
    env: Mapping[str, str] | None = None,
    **options: Any,
) -> bytes:
    """Encrypt plaintext ``data``; returns the encrypted file's bytes.

    Master keys come from ``age`` and the other key sources' keywords — the name of their flag:
    ``kms`` (with ``encryption_context`` and ``aws_profile``), ``hc_vault_transit``, ``pgp`` —
    (lists, or comma-separated strings as on the command line), or ``key_groups`` (lists of
    :class:`~secretops.keys.specs.KeySpec`); else from the sources' variables
    (``$SOPS_AGE_RECIPIENTS``, ``$SOPS_KMS_ARN``, ``$SOPS_VAULT_URIS``, ``$SOPS_PGP_FP``); else
    from the matching ``.sops.yaml`` creation rule for ``filename``. The other keywords are
    sops's selection rules (``encrypted_regex="^(data|stringData)$"``, …).
    """
    from secretops.core.selection import RULE_FIELDS
    from secretops.keys.datakey import make_recipients, wrap_data_key
    from secretops.keys.specs import check_keywords, from_env, from_flags

    selection = {k: v for k, v in options.items() if k in RULE_FIELDS}
    keys = {k: v if isinstance(v, str | Mapping) or v is None else list(v)
            for k, v in options.items() if k not in RULE_FIELDS}
    check_keywords(keys)
    env = os.environ if env is None else env
    fmt = format or (format_for_path(filename) if filename else "yaml")
    out_fmt = output_format or fmt
    cfg = _config(filename, env, config)
    store, loaded = load(data, fmt, _store_options(cfg, fmt))
    if fmt == "yaml" and not data.strip():
        raise SecretOpsError(
            "the file has no YAML document to encrypt",
            code=ExitCode.NEED_AT_LEAST_ONE_DOCUMENT,
        )
    if fmt == "yaml" and _COMMENTS_ONLY.fullmatch(data):
        # sops refuses it too (it would keep nothing: the comments belong to no document)
        raise SecretOpsError(
            "the file has no YAML document to encrypt, only comments",
            code=ExitCode.NEED_AT_LEAST_ONE_DOCUMENT,
        )
    if loaded.metadata is not None:
        raise SecretOpsError(
            "the file is already encrypted",
            code=ExitCode.FILE_ALREADY_ENCRYPTED,
            hints=("decrypt it first if you mean to encrypt it again",),
        )
    groups: list[list[KeySpec]] = [list(g) for g in key_groups] if key_groups else []
    if not groups:
        given = from_flags(age=_as_list(age), **keys)
        if given:
            groups = [given]
    rule = None
    if cfg is not None and filename is not None:
        rule = cfg.rule_for(filename) if not groups or not any(selection.values()) else None
    if not groups:
        env_keys = from_env(env)
        if env_keys:
            groups = [env_keys]
        elif rule is not None:
            groups = rule.key_groups()
            shamir_threshold = shamir_threshold or rule.shamir_threshold
    sel_rules = {k: v for k, v in selection.items() if v}
    if not sel_rules and rule is not None:
        sel_rules = dict(rule.selection)
    if mac_only_encrypted is None:
        mac_only_encrypted = bool(rule.mac_only_encrypted) if rule is not None else False
    if fmt == "binary" and not sel_rules:
        # sops writes no selection rule for binary files (the one value is always encrypted)
        sel = Selection(mac_only_encrypted=mac_only_encrypted)
    else:
        sel = Selection.build(mac_only_encrypted=mac_only_encrypted, **sel_rules)
    recipients = make_recipients([g for g in groups if g], env)
    data_key = os.urandom(32)
    metadata = Metadata(
        key_groups=wrap_data_key(recipients, data_key, shamir_threshold, os.urandom),
        # kept with one group too, as sops keeps it: a group added later is then under it
        shamir_threshold=shamir_threshold,
        selection=sel,
    )
    if len(recipients) > 1 and not metadata.shamir_threshold:
        metadata.shamir_threshold = len(recipients)
    docs = seal(loaded.docs, metadata, data_key, random=os.urandom, lastmodified=now())
    out_store = store if out_fmt == fmt else get_store(out_fmt, _store_options(cfg, out_fmt))
    return out_store.emit(docs, metadata.to_wire(), loaded.layout if out_fmt == fmt else None)


def decrypt(
    data: bytes,
    *,
    format: str | None = None,
    output_format: str | None = None,
    filename: str | None = None,
    ignore_mac: bool = False,
    extract_path: str | None = None,
    config: str | None = None,
    env: Mapping[str, str] | None = None,
) -> bytes:
    """Decrypt an encrypted file's bytes; returns the plaintext file (or one extracted value)."""
    from secretops.fileops import decrypt_data

    return decrypt_data(data, format=format, output_format=output_format, filename=filename,
                        ignore_mac=ignore_mac, extract_path=extract_path, config=config,
                        env=env)


def encrypt_file(path: str, **kwargs: Any) -> bytes:
    """Encrypt the file at ``path`` (format from its name unless ``format`` is given)."""
    from secretops.fileio import read_input

    try:
        return encrypt(read_input(path), filename=path, **kwargs)
    except SecretOpsError as e:
        raise e.with_file(path) from None


def decrypt_file(path: str, **kwargs: Any) -> bytes:
    """Decrypt the file at ``path`` (format from its name unless ``format`` is given)."""
    from secretops.fileio import read_input

    try:
        return decrypt(read_input(path), filename=path, **kwargs)
    except SecretOpsError as e:
        raise e.with_file(path) from None
