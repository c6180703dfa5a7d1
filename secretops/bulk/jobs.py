"""The per-file work of ``decrypt``, ``encrypt``, ``filestatus`` and ``check`` over many files.

Each job is called once per file in a worker process (:mod:`secretops.bulk.pool`) and returns
an :class:`~secretops.bulk.pool.Outcome`: the lines to print, or the file's failure. A job
reads the file, works on it in memory and writes the result with
:func:`secretops.fileio.write_file` (atomic; plaintext 0600), so a failure leaves the file as
it was. Which files found in directories a job takes is :mod:`secretops.discover`'s.
The key-changing jobs (``updatekeys``, ``rotate``) are in :mod:`secretops.bulk.keyjobs`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from secretops.bulk.paths import Item
from secretops.bulk.pool import Job, Outcome
from secretops.errors import ExitCode, MetadataError, SecretOpsError

if TYPE_CHECKING:
    from secretops.config import Config


class Decrypting(Job):
    """A job that opens encrypted files: identities are loaded once per process (age ones
    before the workers start, so they share them), then reused for every file."""

    preload: tuple[str, ...] = (
        "secretops.compose", "secretops.config", "secretops.core.engine", "secretops.discover",
        "secretops.fileio", "secretops.fileops", "secretops.stores.yaml",
        "ctypes")  # secretops.batchwrite's syncfs, which makes the rewritten files durable

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    def setup(self) -> None:
        from secretops.keys.datakey import lazy_identities

        lookup = lazy_identities(self.env)
        with contextlib.suppress(SecretOpsError):  # reported by the first file that needs it
            lookup("age")
        self.state["identities"] = lookup


class DecryptJob(Decrypting):
    """``decrypt -i`` (``out_dir`` None) or ``decrypt --output-dir``."""

    def __init__(self, env: Mapping[str, str], *, out_dir: str | None, overwrite: bool,
                 input_type: str | None, ignore_mac: bool, config_path: str | None) -> None:
        super().__init__(env)
        self.out_dir, self.overwrite = out_dir, overwrite
        self.input_type, self.ignore_mac, self.config_path = input_type, ignore_mac, config_path

    def __call__(self, item: Item) -> Outcome:
        from secretops.bulk import outdir
        from secretops.fileio import read_input, write_file

        file = item.path
        data = read_input(file, rewrite=self.out_dir is None)
        if not item.named and not _marked(data):
            return Outcome(file, skipped=True)
        try:
            plain = self._decrypt(file, data)
        except MetadataError:
            if item.named or is_encrypted(data, file, self.input_type):
                raise
            return Outcome(file, skipped=True)  # found, holds the marker, but not sops's file
        if self.out_dir is None:
            write_file(file, plain, private=True, rewrite=True)
            return Outcome(file, (f"{file}: decrypted in place",), tags=("done",))
        out = outdir.target(self.out_dir, file)
        try:
            write_file(out, plain, private=True, exclusive=not self.overwrite)
        except FileExistsError:
            raise SecretOpsError(f"{out} exists: not replaced",
                                 code=ExitCode.COULD_NOT_WRITE_OUTPUT,
                                 hints=("--overwrite replaces existing files",)) from None
        return Outcome(file, (f"{file}: decrypted to {out}",), tags=("done",))

    def _decrypt(self, file: str, data: bytes) -> bytes:
        """What ``secretops decrypt FILE`` prints (the same store options and layout)."""
        from secretops.fileops import decrypt_data

        return decrypt_data(data, format=self.input_type, filename=file,
                            ignore_mac=self.ignore_mac, config=self.config_path, env=self.env,
                            identities=self.state["identities"], config_for=self._config_for)

    def _config_for(self, file: str | None) -> Config | None:
        """The config :func:`~secretops.compose.load_config_for` finds for ``file``, looked
        up once per directory in this process (as :class:`~secretops.discover.Rules` does for
        updatekeys and rotate); a lookup that fails is not kept, each file reports it."""
        from secretops.compose import load_config_for

        where = os.path.dirname(os.path.abspath(file)) if file else ""
        found: dict[str, Config | None] = self.state.setdefault("configs", {})
        if where not in found:
            found[where] = load_config_for(file, self.env, self.config_path)
        return found[where]


def _marked(data: bytes) -> bool:
    from secretops.discover import looks_encrypted

    return looks_encrypted(data)


def is_encrypted(data: bytes, file: str, input_type: str | None) -> bool:
    from secretops.fileops import is_encrypted as has_metadata
    from secretops.stores import format_for_path

    return has_metadata(data, input_type or format_for_path(file))


class EncryptJob(Job):
    """``encrypt -i`` of many files; found files only when ``check`` says they must be
    encrypted (``encrypt -i --all``, a directory)."""

    def __init__(self, env: Mapping[str, str], *, input_type: str | None,
                 config_path: str | None, options: Mapping[str, Any]) -> None:
        self.env = dict(env)
        self.input_type, self.config_path = input_type, config_path
        self.options = dict(options)

    def setup(self) -> None:
        from secretops.git.guard import Policy

        self.state["policy"] = Policy(self.env, self.config_path)

    def __call__(self, item: Item) -> Outcome:
        from secretops import api
        from secretops.fileio import read_input, write_file

        file = item.path
        data = read_input(file, rewrite=True)
        if not item.named:
            verdict = self.state["policy"].verdict(file, data)
            if (not verdict.must_encrypt or verdict.allowed_by
                    or (_marked(data) and is_encrypted(data, file, self.input_type))):
                return Outcome(file, skipped=True)
        result = api.encrypt(data, format=self.input_type, filename=file,
                             config=self.config_path, env=self.env, **self.options)
        write_file(file, result, private=False, rewrite=True)
        return Outcome(file, (f"{file}: encrypted",), tags=("done",))


class StatusJob(Job):
    """``filestatus`` of many files: one JSON object per line, the file's name in it."""

    def __init__(self, input_type: str | None) -> None:
        self.input_type = input_type

    def __call__(self, item: Item) -> Outcome:
        import json

        from secretops.fileio import read_input

        data = read_input(item.path)
        encrypted = is_encrypted(data, item.path, self.input_type)
        line = json.dumps({"file": item.path, "encrypted": encrypted}, separators=(",", ":"))
        return Outcome(item.path, (line,), tags=("done",))


class CheckJob(Job):
    """``check`` of working-tree files: the findings' lines; tags count checked and
    allowlisted files."""

    preload = ("secretops.fileio", "secretops.git.guard", "secretops.stores.yaml")

    def __init__(self, env: Mapping[str, str], config_path: str | None) -> None:
        self.env, self.config_path = dict(env), config_path

    def setup(self) -> None:
        from secretops.git.guard import Policy

        self.state["policy"] = Policy(self.env, self.config_path)

    def __call__(self, item: Item) -> Outcome:
        import os

        from secretops.fileio import read_bounded
        from secretops.git.guard import check_data, is_skipped

        name = os.path.normpath(item.path)
        # as before many files: config files, symbolic links and special files are passed over
        if is_skipped(name) or os.path.islink(name) or (
                os.path.exists(name) and not os.path.isfile(name)):
            return Outcome(name, skipped=True)
        try:
            with open(name, "rb") as f:
                data = read_bounded(f)  # a guard fails closed: too large is an error
        except FileNotFoundError:
            raise SecretOpsError("no such file or directory",
                                 code=ExitCode.COULD_NOT_READ_INPUT) from None
        except OSError as e:
            raise SecretOpsError(f"cannot read: {e.strerror}",
                                 code=ExitCode.COULD_NOT_READ_INPUT) from None
        verdict = self.state["policy"].verdict(name, data)
        if verdict.allowed_by:
            return Outcome(name, tags=("checked", "allowed"))
        findings = check_data(name, data, verdict=verdict)
        return Outcome(name, tuple(str(f) for f in findings),
                       tags=("checked", *(("finding",) if findings else ())))
