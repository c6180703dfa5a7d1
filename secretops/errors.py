"""Errors and the exit-code table.

Every failure a user can cause is a :class:`SecretOpsError` carrying an exit code, the file and
tree path it concerns, and optional hints. The CLI prints it as one line::

    secretops: error: secret.enc.yaml: ["data"]["password"]: MAC mismatch
    secretops: hint: the file was changed by something other than sops/secretops

The numbers reuse sops's (``cmd/sops/codes``) wherever the meaning is the same, so tools that
read sops exit codes (ansible's community.sops, CI scripts) keep working. The table is
documented in ``docs/exit-codes.md``; a test keeps the two in step.

Messages never contain a secret value: they name files, paths, key recipients and causes only.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes. Values equal to sops's where the meaning matches."""

    GENERIC = 1
    COULD_NOT_READ_INPUT = 2
    COULD_NOT_WRITE_OUTPUT = 3
    ERROR_DUMPING_TREE = 4
    ERROR_READING_CONFIG = 5
    INVALID_KMS_ENCRYPTION_CONTEXT = 6
    INVALID_SET_FORMAT = 7
    CONFLICTING_PARAMETERS = 8
    ERROR_ENCRYPTING_MAC = 21
    ERROR_ENCRYPTING_TREE = 23
    ERROR_DECRYPTING_MAC = 24
    ERROR_DECRYPTING_TREE = 25
    CANNOT_CHANGE_KEYS_FROM_NON_EXISTENT_FILE = 49
    MAC_MISMATCH = 51
    MAC_NOT_FOUND = 52
    CONFIG_FILE_NOT_FOUND = 61
    KEYBOARD_INTERRUPT = 85
    INVALID_TREE_PATH_FORMAT = 91
    NEED_AT_LEAST_ONE_DOCUMENT = 92
    NO_FILE_SPECIFIED = 100
    NO_ENCRYPTION_KEY_FOUND = 111
    DUPLICATE_DECRYPTION_KEY_TYPE = 112
    COULD_NOT_RETRIEVE_KEY = 128
    # secretops-specific codes live above sops's range so they never collide.
    INVALID_INPUT = 150
    METADATA_NOT_FOUND = 151
    UNSUPPORTED_VERSION = 152
    KEY_FILE_EXISTS = 153
    INVALID_KEY = 154
    CONFIRMATION_REQUIRED = 155
    FILES_CHANGED = 156
    HISTORY_INCOMPLETE = 157
    PLAINTEXT_FOUND = 158
    LIMIT_EXCEEDED = 159
    # 160-169: SealedSecrets (secretops.sealing).
    SEALED_SCOPE_MISMATCH = 160
    INVALID_SEALED_SECRET = 161
    CERT_FETCH_FAILED = 162
    TEMPLATE_ERROR = 163
    SEALED_TEMPLATE_NOT_BOUND = 164
    # 170-179: External Secrets (secretops.eso).
    ESO_UNTRANSLATED = 170
    # 180-189: many-file commands (secretops.bulk).
    SOME_FILES_FAILED = 180
    ACTION_NEEDED = 181
    FILE_HAS_NOT_BEEN_MODIFIED = 200
    NO_EDITOR_FOUND = 201
    FILE_ALREADY_ENCRYPTED = 203


class SecretOpsError(Exception):
    """A user-facing failure: message, exit code, optional file, tree path and hints."""

    code: ExitCode = ExitCode.GENERIC

    def __init__(
        self,
        message: str,
        *,
        code: ExitCode | None = None,
        file: str | None = None,
        path: str | None = None,
        hints: tuple[str, ...] | list[str] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.file = file
        self.path = path
        self.hints = tuple(hints)

    def with_file(self, file: str) -> SecretOpsError:
        """Attach the file name if none is set yet; returns self for ``raise e.with_file(f)``."""
        if self.file is None:
            self.file = file
        return self

    def __str__(self) -> str:
        parts = [p for p in (self.file, self.path) if p]
        parts.append(self.message)
        return ": ".join(parts)


class FormatError(SecretOpsError):
    """The input could not be parsed (not YAML/JSON/..., truncated, duplicate keys)."""

    code = ExitCode.INVALID_INPUT


class DumpError(FormatError):
    """The documents cannot be written in the output format (a nested value in an INI key, no
    ``data`` key for a binary file): sops's "error dumping tree"."""

    code = ExitCode.ERROR_DUMPING_TREE


class MetadataError(SecretOpsError):
    """The file has no usable ``sops`` metadata."""

    code = ExitCode.METADATA_NOT_FOUND


class MacMismatchError(SecretOpsError):
    """The file's MAC does not match its content: it was tampered with or corrupted."""

    code = ExitCode.MAC_MISMATCH


class DecryptionError(SecretOpsError):
    """A value could not be decrypted (tampered ciphertext, wrong path, wrong key)."""

    code = ExitCode.ERROR_DECRYPTING_TREE


class NoKeyError(SecretOpsError):
    """No identity available could unwrap the data key."""

    code = ExitCode.COULD_NOT_RETRIEVE_KEY


class LimitExceededError(SecretOpsError):
    """The input exceeds a documented limit (``docs/security.md``): refused before any work."""

    code = ExitCode.LIMIT_EXCEEDED

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None,
                 hints: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message, file=file, path=path, hints=(
            *hints, "the limits are listed in docs/security.md (Limits on keys and key entries)"))


class ConfigError(SecretOpsError):
    """``.sops.yaml`` is unreadable or invalid."""

    code = ExitCode.ERROR_READING_CONFIG


def format_path(path: list[str | int] | tuple[str | int, ...]) -> str:
    """Render a tree path the way ``--extract`` takes it: ``["data"]["password"][0]``."""
    out = []
    for p in path:
        out.append(f"[{p}]" if isinstance(p, int) else '["' + str(p).replace('"', '\\"') + '"]')
    return "".join(out)
