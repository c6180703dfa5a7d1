"""age recipients and identities (X25519, SSH keys, plugins), through pyrage.

The data key is wrapped as a complete armored age file whose payload is the raw 32-byte key (or
a Shamir share), one file per recipient — the same as sops's ``age`` entries.

Identities are discovered as sops 3.11 does, all sources combined:
``SOPS_AGE_SSH_PRIVATE_KEY_FILE``, ``~/.ssh/id_ed25519``, ``~/.ssh/id_rsa``, ``SOPS_AGE_KEY``,
``SOPS_AGE_KEY_FILE``, ``SOPS_AGE_KEY_CMD`` (run without a shell, arguments split like a shell
would), and ``$XDG_CONFIG_HOME/sops/age/keys.txt`` (default ``~/.config/sops/age/keys.txt``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from secretops.core.agemsg import AgeMessageError, read_message
from secretops.core.metadata import KeyEntry
from secretops.errors import ExitCode, SecretOpsError
from secretops.keys import KeyMismatch, KeySource, WireKey
from secretops.keys.specs import KeySpec

KIND = "age"


class _PluginCallbacks:
    """How an age plugin talks to the user: on a terminal it may ask; without one it cannot."""

    def display_message(self, message: str) -> None:
        sys.stderr.write(f"secretops: age plugin: {message}\n")

    def confirm(self, message: str, yes_string: str, no_string: str | None) -> bool | None:
        if not sys.stdin.isatty():
            return None
        answer = input(f"{message} [{yes_string}/{no_string or 'no'}] ").strip()
        return answer == yes_string

    def request_public_string(self, description: str) -> str | None:
        return input(f"{description}: ") if sys.stdin.isatty() else None

    def request_passphrase(self, description: str) -> str | None:
        if not sys.stdin.isatty():
            return None
        import getpass

        return getpass.getpass(f"{description}: ")


def parse_recipient(text: str) -> Any:
    """A pyrage recipient from ``age1…``, ``age1<plugin>1…`` or an SSH public key line.

    Plugin recipients (``age1yubikey1…``) are handed to the ``age-plugin-<name>`` program on
    PATH, through pyrage's plugin client.
    """
    import pyrage
    from pyrage import plugin, ssh, x25519

    text = text.strip()
    try:
        if text.startswith(("ssh-ed25519 ", "ssh-rsa ")):
            return ssh.Recipient.from_str(text)
        if text.startswith("age1"):
            try:
                return x25519.Recipient.from_str(text)
            except pyrage.RecipientError:
                if text.count("1") >= 2:
                    rec = plugin.Recipient.from_str(text)
                    try:
                        return plugin.RecipientPluginV1(rec.plugin(), [rec], [],
                                                        _PluginCallbacks())
                    except pyrage.EncryptError:
                        raise SecretOpsError(
                            f"cannot encrypt to age plugin recipient {text}: "
                            f"age-plugin-{rec.plugin()} was not found on PATH",
                            code=ExitCode.ERROR_ENCRYPTING_TREE,
                            hints=(f"install age-plugin-{rec.plugin()}",),
                        ) from None
                raise
    except (pyrage.RecipientError, ValueError) as e:
        raise SecretOpsError(
            f"invalid age recipient {text!r}: {e}", code=ExitCode.INVALID_KEY
        ) from None
    raise SecretOpsError(
        f"invalid age recipient {text!r}: expected age1…, an age plugin recipient, "
        "or an ssh-ed25519/ssh-rsa public key",
        code=ExitCode.INVALID_KEY,
    )


class AgeRecipient:
    """Wraps a data key for one age recipient."""

    kind = KIND

    def __init__(self, recipient: str) -> None:
        self.recipient = recipient
        self._parsed = parse_recipient(recipient)

    def __repr__(self) -> str:
        return f"AgeRecipient({self.recipient!r})"

    def wrap(self, data_key: bytes) -> KeyEntry:
        import pyrage

        try:
            enc = pyrage.encrypt(data_key, [self._parsed], armored=True).decode("ascii")
        except pyrage.EncryptError as e:
            raise SecretOpsError(
                f"cannot encrypt to age recipient {self.recipient}: {e}",
                code=ExitCode.ERROR_ENCRYPTING_TREE,
                hints=("a plugin recipient needs its age-plugin-<name> program on PATH",),
            ) from None
        return KeyEntry(KIND, {"recipient": self.recipient, "enc": enc})


class AgeIdentities:
    """All age identities found for this user; unwraps ``age`` entries.

    ``problems`` are the sources that were named but could not be used (a missing
    ``SOPS_AGE_KEY_FILE``, a failing ``SOPS_AGE_KEY_CMD``, a malformed key): as in sops they do
    not stop the other sources, and they are reported when no identity opens the entry.
    """

    kind = KIND

    def __init__(self, identities: list[Any], sources: list[str],
                 problems: list[str] | None = None) -> None:
        self.identities = identities
        self.sources = sources
        self.problems = problems or []

    def unwrap(self, entry: KeyEntry) -> bytes:
        if not self.identities:
            if self.problems:
                raise RuntimeError("failed to load age identities: " + "; ".join(self.problems))
            raise KeyMismatch()
        try:
            return unwrap_message(entry.enc, self.identities)
        except KeyMismatch:
            if self.problems:  # the identity that fits may be in the source that failed
                raise RuntimeError("no age identity fits; also failed to load: "
                                   + "; ".join(self.problems)) from None
            raise


def unwrap_message(message: str | bytes, identities: list[Any]) -> bytes:
    """The payload of an age message (armored or binary) that one of ``identities`` opens.

    The header is bounded first (:func:`secretops.core.agemsg.read_message`): a message past
    the limits raises :class:`~secretops.errors.LimitExceededError` before any identity runs.
    pyrage reads it through its buffered reader, whose cost grows linearly with the header
    (its in-memory ``decrypt`` re-parses the header for every line it reads). Raises
    :class:`KeyMismatch` when no identity fits; any other failure is a ``RuntimeError``.
    """
    import io

    import pyrage

    try:
        read_message(message)
    except AgeMessageError as e:
        raise RuntimeError(f"the wrapped key is not a valid age message: {e}") from None
    data = message.encode("ascii") if isinstance(message, str) else message
    out = io.BytesIO()
    try:
        pyrage.decrypt_io(io.BytesIO(data), out, identities)
    except pyrage.DecryptError as e:
        if "No matching keys" in str(e) or "no identity matched" in str(e).lower():
            raise KeyMismatch() from None
        raise RuntimeError(f"age could not decrypt the wrapped key: {e}") from None
    except OSError as e:  # the payload failed to decrypt (pyrage reports it as I/O)
        raise RuntimeError(f"age could not decrypt the wrapped key: {e}") from None
    except Exception as e:  # a plugin that is missing or fails
        raise AgePluginError(f"age plugin failed: {e}") from None
    return out.getvalue()


class AgePluginError(RuntimeError):
    """An age plugin program is missing or failed while unwrapping."""


def parse_identities(text: str, source: str) -> list[Any]:
    """Identities from the text of an age key file (comments and blank lines ignored)."""
    import pyrage
    from pyrage import plugin, x25519

    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith("AGE-SECRET-KEY-1"):
                out.append(x25519.Identity.from_str(line))
            elif line.startswith("AGE-PLUGIN-"):
                ident = plugin.Identity.from_str(line)
                out.append(plugin.IdentityPluginV1(ident.plugin(), [ident], _PluginCallbacks()))
            else:
                raise ValueError("not an age identity")
        except (pyrage.IdentityError, ValueError):
            raise SecretOpsError(
                f"{source}: line {n}: not a valid age identity",
                code=ExitCode.INVALID_KEY,
                hints=("age key files hold AGE-SECRET-KEY-1… lines, one per identity",),
            ) from None
    return out


def _ssh_identity(path: str) -> Any:
    from pyrage import ssh

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SecretOpsError(
            f"cannot read SSH key {path}: {e.strerror}", code=ExitCode.INVALID_KEY
        ) from None
    try:
        return ssh.Identity.from_buffer(data)
    except Exception:
        raise SecretOpsError(
            f"{path}: not a usable SSH private key (encrypted SSH keys are not supported)",
            code=ExitCode.INVALID_KEY,
        ) from None


def default_key_file(env: Mapping[str, str]) -> str:
    """``$XDG_CONFIG_HOME/sops/age/keys.txt``, else ``~/.config/sops/age/keys.txt``."""
    base = env.get("XDG_CONFIG_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".config"
    )
    return os.path.join(base, "sops", "age", "keys.txt")


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def load_identities(env: Mapping[str, str]) -> AgeIdentities:
    """Every identity the environment offers, as sops 3.11 discovers them: all sources
    combined, and a source that is named but fails (unreadable, malformed, a failing command)
    noted in ``problems`` without stopping the others — so ``SOPS_AGE_KEY`` still works when
    ``SOPS_AGE_KEY_FILE`` names a missing file."""
    ids: list[Any] = []
    sources: list[str] = []
    problems: list[str] = []

    def take(source: str, load: Any) -> None:
        try:
            found = load()
        except SecretOpsError as e:
            problems.append(e.message)
            return
        ids.extend(found)
        sources.append(source)

    home = env.get("HOME") or os.path.expanduser("~")
    ssh_file = env.get("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
    if ssh_file:
        take(ssh_file, lambda: [_ssh_identity(ssh_file)])
    for name in ("id_ed25519", "id_rsa"):
        p = os.path.join(home, ".ssh", name)
        if os.path.exists(p):
            try:
                ids.append(_ssh_identity(p))
                sources.append(p)
            except SecretOpsError:
                pass  # a passphrase-protected default key must not block other identities
    if "SOPS_AGE_KEY" in env:
        take("SOPS_AGE_KEY", lambda: parse_identities(env["SOPS_AGE_KEY"], "SOPS_AGE_KEY"))
    key_file = env.get("SOPS_AGE_KEY_FILE")
    if key_file:
        take(key_file, lambda: parse_identities(
            _read_key_file(key_file, " (SOPS_AGE_KEY_FILE)"), key_file))
    cmd = env.get("SOPS_AGE_KEY_CMD")
    if cmd:
        take("SOPS_AGE_KEY_CMD", lambda: parse_identities(_run_key_cmd(cmd, env),
                                                          "SOPS_AGE_KEY_CMD"))
    default = default_key_file(env)
    if os.path.exists(default):
        take(default, lambda: parse_identities(_read_key_file(default, ""), default))
    return AgeIdentities(ids, sources, problems)


def _read_key_file(path: str, what: str) -> str:
    try:
        return _read_text(path)
    except (OSError, UnicodeDecodeError) as e:
        raise SecretOpsError(
            f"cannot read the age key file {path}{what}: "
            f"{getattr(e, 'strerror', None) or 'not text'}",
            code=ExitCode.INVALID_KEY,
        ) from None


def _run_key_cmd(cmd: str, env: Mapping[str, str]) -> str:
    import shlex
    import subprocess

    try:
        return subprocess.run(
            shlex.split(cmd), capture_output=True, stdin=subprocess.DEVNULL, check=True,
            env=dict(env),
        ).stdout.decode("utf-8")
    except (OSError, ValueError, subprocess.CalledProcessError) as e:
        raise SecretOpsError(
            f"SOPS_AGE_KEY_CMD failed: {type(e).__name__}", code=ExitCode.INVALID_KEY
        ) from None


def generate() -> tuple[str, str]:
    """A new X25519 identity: ``(secret key line, public recipient)``."""
    from pyrage import x25519

    ident = x25519.Identity.generate()
    return str(ident), str(ident.to_public())


def recipient(fields: Mapping[str, Any], env: Mapping[str, str]) -> AgeRecipient:
    """The key-source interface (see :mod:`secretops.keys`)."""
    return AgeRecipient(str(fields["recipient"]))


def identity(env: Mapping[str, str]) -> AgeIdentities | None:
    """The key-source interface: every age identity the environment offers (and the sources
    that failed), or None when there is neither."""
    ids = load_identities(env)
    return ids if ids.identities or ids.problems else None


def _spec(value: str, options: Mapping[str, Any]) -> KeySpec:
    return KeySpec(KIND, {"recipient": value})  # checked when its recipient is built


SOURCE = KeySource(
    KIND,
    title="age",
    describe=lambda f: f"age recipient {f.get('recipient', '?')}",
    identity_fields=("recipient",),
    flag="age",
    short="a",
    metavar="RECIPIENTS",
    help="age recipients (age1…, ssh-ed25519 …, plugins)",
    example="age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
    env="SOPS_AGE_RECIPIENTS",
    config_key="age",
    group_key="age",
    parse=_spec,
    recipient=recipient,
    identity=identity,
    no_identity_hint="set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY, or put your age key in "
                     "~/.config/sops/age/keys.txt",
    wire=WireKey(6, ("recipient",)),
)
