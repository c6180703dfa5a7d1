"""The plaintext guard behind ``secretops check``: find secrets about to be committed in clear.

No key is needed: nothing is decrypted. For every file the guard reports *findings* — a file,
a tree path such as ``["data"]["password"]`` (empty for the whole file) and a reason, never a
value — for these cases:

* **A creation rule says the file must be encrypted, and it is not.** The first rule of the
  ``.sops.yaml`` that applies to the file (found as ``encrypt`` finds it) matches it *with a
  ``path_regex``*. A rule without ``path_regex`` matches every file, so it does not make every
  README a secret: only a rule that names paths does. A file that must be encrypted but does
  not parse as its format is a finding too.
* **A Kubernetes ``Secret`` carries plaintext.** Any YAML or JSON document (every document of a
  multi-document file, and the ``items`` of a ``kind: List``) with ``apiVersion: v1`` and
  ``kind: Secret`` whose ``data`` or ``stringData`` has a value that is not ``ENC[…]`` (with
  the IV and tag sizes sops writes); empty and null values are fine. This holds whether or not
  a rule matches the file, and a file that looks like a Secret but does not parse is one too.
* **An encrypted file is malformed.** Its ``sops`` metadata does not load, lacks ``mac``,
  ``lastmodified`` or ``version``, names no master key, or a value that the file's own selection
  rule (``unencrypted_suffix``, ``encrypted_regex``, the comment rules …, read from its
  metadata as ``decrypt`` reads them) says is encrypted is plaintext — the structural checks of
  a decryption, without the key. A file that looks encrypted but does not parse is one too.

**Allowlist.** Files meant to be plaintext (fixtures, examples) are skipped when

* a glob in the ``.sops.yaml`` that applies to the file matches it::

      secretops:
        check:
          allow: ["tests/fixtures/", "examples/*.yaml", "dummy-secret.yaml"]

  Globs are matched against the path relative to the ``.sops.yaml`` directory, like
  ``path_regex``: ``*`` and ``?`` stay within one path component, ``**`` crosses them, a glob
  without ``/`` matches a file name in any directory, and a glob that matches a directory
  allows everything below it. sops (3.11) ignores top-level keys it does not know, so the
  entry is safe in a shared ``.sops.yaml``;
* or the file has the marker line ``# secretops: allow-plaintext`` (``;`` works too, for INI).
  JSON has no comments: allowlist JSON files in ``.sops.yaml``.

:func:`check_data` is pure (bytes in, findings out); :class:`Policy` reads ``.sops.yaml``
files to tell what applies to a path.
"""

from __future__ import annotations

import binascii
import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from secretops.config import Config, find_config, load_config, relative_path
from secretops.configpath import CONFIG_NAMES
from secretops.core.cipher import enc_fields
from secretops.core.metadata import Metadata
from secretops.core.selection import Selection
from secretops.core.tree import Branch, Comment, Seq, iter_leaves
from secretops.errors import SecretOpsError, format_path
from secretops.stores import Loaded, format_for_path, get_store

ALLOW_MARKER = "secretops: allow-plaintext"
_MARKER_TEXT = "secretops:allow-plaintext"
_MARKER_RE = re.compile(rb"^[ \t]*[#;][ \t]*secretops:[ \t]*allow-plaintext[ \t]*\r?$", re.M)
_SECRET_KIND = re.compile(rb"""(?:^|[\s{,])["']?kind["']?[ \t]*:[ \t]*["']?Secret\b""", re.M)
_SKIP_NAMES = frozenset(CONFIG_NAMES)


class Finding(NamedTuple):
    """One problem: where it is, and why. Never a value."""

    file: str
    path: str
    reason: str

    def __str__(self) -> str:
        return ": ".join(p for p in (self.file, self.path, self.reason) if p)


class Verdict(NamedTuple):
    """What applies to one file: must it be encrypted (and why), is it allowlisted (and why)."""

    must_encrypt: bool = False
    rule: str = ""
    allowed_by: str = ""


def _well_formed(value: object) -> bool:
    """An ``ENC[…]`` value whose fields are strict base64 (as sops writes and reads them) and
    whose IV and tag have the sizes sops writes (32 and 16 bytes): a hand-made
    ``ENC[AES256_GCM,data:<the secret>,iv:x,tag:y,…]`` is not one."""
    if not isinstance(value, str) or not value.endswith("]") or "\n" in value:
        return False
    fields = enc_fields(value)  # the value parser's own reading, in linear time
    if fields is None:
        return False
    try:
        binascii.a2b_base64(fields[0], strict_mode=True)
        iv = binascii.a2b_base64(fields[1], strict_mode=True)
        tag = binascii.a2b_base64(fields[2], strict_mode=True)
    except (binascii.Error, ValueError):  # ValueError: not ASCII
        return False
    return len(iv) == 32 and len(tag) == 16


def has_allow_marker(data: bytes, fmt: str) -> bool:
    """Does the file carry the ``# secretops: allow-plaintext`` line? (Never for JSON.)

    In YAML the line must be a comment, not a line of a block scalar's text (a README
    pasted into a Secret); a file that does not parse keeps the benefit of the doubt."""
    if fmt == "json" or _MARKER_RE.search(data) is None:
        return False
    if fmt != "yaml":
        return True
    loaded = _load(data, fmt)
    if loaded is None or not any(loaded.docs):  # no parse, or comments only
        return True
    return any(isinstance(leaf, Comment) and leaf.strip().replace(" ", "") == _MARKER_TEXT
               for doc in loaded.docs for leaf in iter_leaves(doc))


def check_data(name: str, data: bytes, *, fmt: str | None = None,
               verdict: Verdict | None = None) -> list[Finding]:
    """Every finding for one file's content. ``name`` is only used to label findings."""
    fmt = fmt or format_for_path(name)
    verdict = verdict or Verdict()
    if verdict.allowed_by:
        return []
    if (not verdict.must_encrypt and b"sops" not in data
            and (fmt not in ("yaml", "json") or b"Secret" not in data)):
        return []  # nothing to find: skip parsing (most files of a walked tree)
    loaded = _load(data, fmt)
    if loaded is None:
        if verdict.must_encrypt:
            return [Finding(name, "", f"{verdict.rule} says this file must be encrypted, but "
                                      f"it does not parse as {fmt}")]
        if b"ENC[AES256_GCM," in data and b"sops" in data:
            return [Finding(name, "", f"looks encrypted but does not parse as {fmt}")]
        if fmt in ("yaml", "json") and _SECRET_KIND.search(data):
            # a later document that does not parse, a duplicate key: the Secret in it cannot
            # be checked, and kubectl may well apply it
            return [Finding(name, "", f"looks like a Kubernetes Secret but does not parse as "
                                      f"{fmt}, so it cannot be checked")]
        return []
    findings: list[Finding] = []
    if loaded.metadata is None:
        if verdict.must_encrypt:
            findings.append(Finding(name, "", f"{verdict.rule} says this file must be "
                                              "encrypted, but it has no sops metadata"))
    else:
        findings += _check_encrypted(name, loaded)
    if fmt in ("yaml", "json"):
        findings += _check_secrets(name, loaded.docs)
    return _unique(findings)


def _load(data: bytes, fmt: str) -> Loaded | None:
    """The parsed file, or None when it does not parse. A file over a limit on input (size,
    nesting, aliases) is an error instead: the guard fails closed on what it cannot check."""
    from secretops.limits import LimitError

    try:
        return get_store(fmt).load(data)
    except LimitError:
        raise
    except SecretOpsError:
        return None


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    out = []
    for f in findings:
        if (f.file, f.path) not in seen:
            seen.add((f.file, f.path))
            out.append(f)
    return out


# -- encrypted files --------------------------------------------------------------------------

def _check_encrypted(name: str, loaded: Loaded) -> list[Finding]:
    try:
        meta = Metadata.from_wire(loaded.metadata)
    except SecretOpsError as e:
        return [Finding(name, "", f"malformed sops metadata: {e.message}")]
    findings = [Finding(name, "", f"malformed sops metadata: {why}")
                for why in _metadata_problems(meta)]
    for doc in loaded.docs:
        for segments in _plaintext_leaves(doc, meta.selection):
            findings.append(Finding(name, format_path(segments),
                                    "plaintext value that the file's selection rule says is "
                                    "encrypted"))
    return findings


def _metadata_problems(meta: Metadata) -> list[str]:
    problems = []
    if not meta.mac:
        problems.append("no mac")
    elif not _well_formed(meta.mac):
        problems.append("the mac is not an ENC[AES256_GCM,...] value")
    if not meta.lastmodified:
        problems.append("no lastmodified")
    else:
        try:
            datetime.fromisoformat(meta.lastmodified)
        except ValueError:
            problems.append("lastmodified is not an RFC 3339 time")
    keys = meta.all_keys()
    if not keys:
        problems.append("no master key")
    for n, key in enumerate(keys):
        if not key.enc:
            problems.append(f"master key {n + 1} ({key.kind}) has no wrapped data key")
    return problems


def _plaintext_leaves(doc: Branch, selection: Selection) -> list[list[str | int]]:
    """Paths of leaves the selection encrypts that are not ``ENC[…]`` (sops's decrypt walk)."""
    found: list[list[str | int]] = []
    by_path = not selection.uses_comments

    def leaf(value: Any, path: list[str], where: list[str | int], stack: list[list[str]],
             matched: bool) -> None:
        if value is None or value == "":
            return
        encrypted = (selection.decide(matched) if by_path
                     else selection.should_encrypt(path, stack, False))
        if encrypted and not _well_formed(value):
            found.append(where)

    # The open collections, a stack of its own (files nest as deep as the limits allow), with
    # their key path, position and comment levels kept in shared lists (pushed and popped).
    path: list[str] = []
    where: list[str | int] = []
    stack: list[list[str]] = [[]]
    todo: list[tuple[Any, bool, bool, bool]] = [(enumerate(doc), True, False, False)]
    while todo:
        items, is_map, matched, keyed = todo[-1]
        for n, item in items:
            if (is_map and type(item) is not tuple) or (not is_map and isinstance(item, Comment)):
                stack[-1].append(str(item))  # comments steer the comment rules only
                continue
            if is_map:
                key = item[0]
                if not isinstance(key, str):
                    continue
                value, label, hit = item[1], key, matched or selection.key_matches(key)
            else:
                value, label, hit = item, n, matched
            where.append(label)
            if is_map:
                path.append(key)
            if isinstance(value, Branch | Seq):
                todo.append((enumerate(value), isinstance(value, Branch), hit, is_map))
                stack.append([])
                break
            leaf(value, path, list(where), stack, hit)
            where.pop()
            if is_map:
                path.pop()
            stack[-1].clear()
        else:
            todo.pop()
            if todo:
                stack.pop()
                where.pop()
                if keyed:
                    path.pop()
                stack[-1].clear()
    return found


# -- Kubernetes Secrets -----------------------------------------------------------------------

def _check_secrets(name: str, docs: list[Branch]) -> list[Finding]:
    findings: list[Finding] = []
    for doc in docs:
        findings += _check_manifest(name, doc, [])
    return findings


def _check_manifest(name: str, node: Any, where: list[str | int]) -> list[Finding]:
    if not isinstance(node, Branch):
        return []
    kind, api = node.get("kind"), node.get("apiVersion")
    findings: list[Finding] = []
    if kind == "List" and isinstance(node.get("items"), Seq):
        items = [v for v in node.get("items") if not isinstance(v, Comment)]
        for i, item in enumerate(items):
            findings += _check_manifest(name, item, [*where, "items", i])
    if kind != "Secret" or api != "v1":
        return findings
    for field in ("data", "stringData"):
        values = node.get(field)
        if values is None:
            continue
        if not isinstance(values, Branch):
            findings.append(Finding(name, format_path([*where, field]),
                                    f"a Kubernetes Secret's {field} is not a map"))
            continue
        for item in values:
            if type(item) is not tuple or item[1] is None or item[1] == "":
                continue
            if not _well_formed(item[1]):
                findings.append(Finding(name, format_path([*where, field, item[0]]),
                                        f"plaintext value in a Kubernetes Secret's {field}"))
    return findings


# -- what applies to a path -------------------------------------------------------------------

class Policy:
    """Tells, for a path, what the ``.sops.yaml`` that applies to it says (each directory's
    config searched for once, each config read once: a policy serves one run)."""

    def __init__(self, env: Mapping[str, str], explicit_config: str | None = None,
                 staged_configs: Mapping[Path, bytes] | None = None) -> None:
        """``staged_configs``: the ``.sops.yaml`` files of the git index (absolute path →
        content): the one that applies to a path is taken from there when the index has one,
        as the commit will; else from the disk (a config that was never added)."""
        self.env = env
        self.explicit_config = explicit_config
        self.staged_configs = staged_configs
        self._configs: dict[Path, tuple[Config, list[tuple[str, re.Pattern[str]]]]] = {}
        self._found: dict[str, Path | None] = {}  # directory -> its config (files don't move)

    def verdict(self, path: str, data: bytes) -> Verdict:
        """The verdict for the file at ``path`` (need not exist) with content ``data``."""
        fmt = format_for_path(path)
        allowed_by = f"the '{ALLOW_MARKER}' marker" if has_allow_marker(data, fmt) else ""
        directory = os.path.dirname(os.path.abspath(path))
        if directory not in self._found:  # the same for every file of a directory
            self._found[directory] = self._find(path)
        cfg_path = self._found[directory]
        if cfg_path is None:
            return Verdict(allowed_by=allowed_by)
        cfg, globs = self._load(cfg_path)
        rel = relative_path(path, cfg.directory)
        if not allowed_by and not os.path.isabs(rel):  # globs name paths below the config
            for glob, rx in globs:
                if _glob_hits(rx, rel):
                    allowed_by = f"'{glob}' in {cfg.path}"
                    break
        rule = _first_rule(cfg, rel)
        return Verdict(must_encrypt=rule is not None, rule=rule or "", allowed_by=allowed_by)

    def _find(self, path: str) -> Path | None:
        staged = self.staged_configs
        cfg_path = None
        if staged and not (self.explicit_config or self.env.get("SOPS_CONFIG")):
            cfg_path = find_config(path, self.env, exists=lambda p: p in staged)
        if cfg_path is None:  # no .sops.yaml in the index for it (or none asked for): the disk
            cfg_path = find_config(path, self.env, self.explicit_config)
        return cfg_path

    def _load(self, cfg_path: Path) -> tuple[Config, list[tuple[str, re.Pattern[str]]]]:
        if cfg_path not in self._configs:
            cfg = load_config(cfg_path, (self.staged_configs or {}).get(cfg_path))
            self._configs[cfg_path] = (cfg, _allow_globs(cfg))
        return self._configs[cfg_path]


def is_skipped(path: str) -> bool:
    """Files the guard never looks at: ``.sops.yaml`` / ``.sops.yml`` and a ``.git`` file."""
    base = os.path.basename(path)
    return base in _SKIP_NAMES or base == ".git"


def _first_rule(cfg: Config, rel: str) -> str | None:
    """``creation_rules[N] (path_regex …)`` when the first rule matching ``rel`` has a path_regex.

    The same matching as :meth:`Config.rule_for`, without parsing the rule's keys (the guard
    needs none, and must not fail on a key source this version does not support).
    """
    found = cfg.match_relative(rel)
    if found is None:
        return None
    n, raw = found
    regex = str(raw.get("path_regex") or "")
    # a catch-all rule applies, but does not single this file out
    return f"creation_rules[{n}] (path_regex {regex})" if regex else None


def _allow_globs(cfg: Config) -> list[tuple[str, re.Pattern[str]]]:
    section = cfg.data.get("secretops") or {}  # shapes checked by load_config
    allow = (section.get("check") or {}).get("allow") or []
    return [(g, glob_to_regex(g)) for g in allow]


def glob_to_regex(glob: str) -> re.Pattern[str]:
    """A path glob as a regex: ``*``/``?``/``[…]`` within a component, ``**`` across them.

    A glob without ``/`` matches in any directory; a trailing ``/`` only names a directory.
    """
    g = glob.strip()
    if g.startswith("./"):
        g = g[2:]
    g = g.rstrip("/") if len(g) > 1 else g
    anywhere = "/" not in g
    g = g.lstrip("/")
    out, i = [], 0
    while i < len(g):
        c = g[i]
        if g.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if g.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in g[i + 2:]:
            end = g.index("]", i + 2)
            body = g[i + 1:end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    prefix = "(?:.*/)?" if anywhere else ""
    return re.compile(prefix + "".join(out) + r"\Z")


def _glob_hits(rx: re.Pattern[str], rel: str) -> bool:
    rel = rel.replace(os.sep, "/")
    parts = rel.split("/")
    return any(rx.match("/".join(parts[:n])) for n in range(1, len(parts) + 1))
