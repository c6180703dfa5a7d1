"""PGP master keys, through the system ``gpg`` binary, as sops does.

A ``pgp`` entry holds ``created_at`` (RFC 3339, UTC), ``enc`` — an ASCII-armored PGP message
whose payload is the raw 32-byte data key (or a Shamir share) — and ``fp``, the fingerprint it
was encrypted to. ``enc`` is gpg's armored output with surrounding whitespace trimmed, exactly as
sops stores it (``enc: |-`` in YAML: no trailing newline).

gpg is run the way sops 3.x runs it when its built-in OpenPGP reader cannot use the keyring
(always, with GnuPG ≥ 2.1's ``pubring.kbx``):

* wrap: ``gpg --no-default-recipient --yes --encrypt -a -r FP --trusted-key SHORTID
  --no-encrypt-to``, the data key on stdin;
* unwrap: ``gpg -d``, the armored message on stdin.

secretops adds ``--batch --no-tty`` (gpg never asks on the terminal; a passphrase, when a key
has one, is asked by gpg-agent's pinentry, as with sops) and ``--status-fd 2`` on decryption,
so that "this secret key is not here" (``NO_SECKEY``: try the next key) is told apart from real
failures (a locked key, an unreachable agent, a damaged message) without parsing translated
text. Keys never touch disk: stdin and stdout are pipes, and every call has a time limit.

Before gpg decrypts anything, the entry's message is checked (:mod:`secretops.core.pgpmsg`):
one armored message, public-key packets (at most
:data:`~secretops.core.limits.MAX_PGP_KEY_PACKETS`) and one encrypted data packet. gpg reads
whatever it is given — every message of several, and for each passphrase-encrypted packet a
request to gpg-agent (a prompt, or a pinentry that fails after about a second): a 12 KB entry
kept ``decrypt`` busy for over a minute. While gpg runs, its output is bounded (a compressed
message may expand to gigabytes), and so is its time.

``SOPS_GPG_EXEC`` names another gpg binary; ``GNUPGHOME`` (else ``~/.gnupg``) is the keyring,
passed to gpg through the environment. When no gpg binary is found, no PGP identity exists and
PGP entries are reported as "no pgp identity available".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from secretops.core.limits import MAX_GPG_OUTPUT, MAX_GPG_STDERR
from secretops.core.metadata import KeyEntry
from secretops.core.pgpmsg import PgpMessageError, read_message
from secretops.errors import ExitCode, LimitExceededError, SecretOpsError
from secretops.keys import KeyMismatch, KeySource, WireKey
from secretops.keys.specs import KeySpec

if TYPE_CHECKING:
    import subprocess

KIND = "pgp"
GPG_EXEC_ENV = "SOPS_GPG_EXEC"
# Long enough for a person to type a passphrase into pinentry, short enough not to hang CI.
TIMEOUT_SECONDS = 120.0
_DETAIL_MAX = 240
_MAX_WRAPPED = 64 * 1024  # gpg's armored message when it wraps a data key (about 1 KiB)
# gpg's human chatter that says nothing about why it failed.
_NOISE = ("gpg: encrypted with", "gpg: checking the trustdb", "gpg: marginals needed",
          "gpg: depth:", "gpg: next trustdb check")


class GpgError(RuntimeError):
    """gpg failed for a reason other than "the secret key is not here"."""


def gpg_program(env: Mapping[str, str]) -> str:
    """``$SOPS_GPG_EXEC`` or ``gpg`` (a name looked up on PATH, or a path)."""
    return env.get(GPG_EXEC_ENV) or "gpg"


def find_gpg(env: Mapping[str, str]) -> str | None:
    """The gpg executable to run, or None when there is none."""
    import shutil

    return shutil.which(gpg_program(env), path=env.get("PATH"))


def _short_id(fingerprint: str) -> str:
    """The last 16 hex digits, which ``--trusted-key`` wants (sops's ``shortenFingerprint``)."""
    offset = len(fingerprint) - 16 - (1 if fingerprint.endswith("!") else 0)
    return fingerprint[offset:] if offset > 0 else fingerprint


def _messages(stderr: bytes) -> list[str]:
    """gpg's own message lines (they never hold key material)."""
    lines = []
    for raw in stderr.decode("utf-8", "replace").splitlines():
        line = "".join(c for c in raw.strip() if c.isprintable())
        if not line.startswith("gpg:") or line.startswith(_NOISE):
            continue  # status lines, user-id continuation lines, trustdb chatter
        lines.append(line[len("gpg:"):].strip())
    return lines


def _detail(stderr: bytes) -> str:
    """gpg's last few messages, short and on one line."""
    text = "; ".join(dict.fromkeys(_messages(stderr)[-3:])) or "no message from gpg"
    return text if len(text) <= _DETAIL_MAX else text[:_DETAIL_MAX - 1] + "…"


def _status(stderr: bytes) -> list[list[str]]:
    """The ``[GNUPG:]`` status lines (``--status-fd 2``), split into words."""
    prefix = "[GNUPG:] "
    return [line[len(prefix):].split()
            for line in stderr.decode("utf-8", "replace").splitlines()
            if line.startswith(prefix)]


class _Output(NamedTuple):
    returncode: int
    stdout: bytes
    stderr: bytes


def _run(exe: str, args: list[str], data: bytes, env: Mapping[str, str], what: str,
         max_stdout: int) -> _Output:
    """Run gpg on ``data``; its output, read as it comes and never more than the limits.

    A hostile message (a compressed packet that expands to gigabytes) would otherwise fill
    memory: past ``max_stdout`` bytes of output or MAX_GPG_STDERR of messages, gpg is killed
    and :class:`~secretops.errors.LimitExceededError` raised. gpg is always waited for, so no
    process is left behind.
    """
    import subprocess  # here, not at the top: reading the record (--help) must stay cheap

    try:
        proc = subprocess.Popen(
            [exe, "--batch", "--no-tty", *args], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(env),
        )
    except OSError as e:
        raise GpgError(f"cannot run {exe} {what}: {e.strerror or e}") from None
    try:
        out, err = _exchange(proc, data, max_stdout, what)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return _Output(proc.returncode, out, err)


def _exchange(proc: subprocess.Popen[bytes], data: bytes, max_stdout: int,
              what: str) -> tuple[bytes, bytes]:
    """Feed stdin and drain stdout and stderr together (no pipe can fill and block gpg)."""
    import selectors
    import time

    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + TIMEOUT_SECONDS
    stdin, stdout, stderr = proc.stdin.fileno(), proc.stdout.fileno(), proc.stderr.fileno()
    bufs = {stdout: bytearray(), stderr: bytearray()}
    caps = {stdout: max_stdout, stderr: MAX_GPG_STDERR}
    pending = memoryview(data)
    with selectors.DefaultSelector() as sel:
        if pending:
            sel.register(stdin, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
        for fd in bufs:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise GpgError(f"gpg did not finish {what} within {TIMEOUT_SECONDS:g} s "
                               "(was it waiting for a passphrase?)")
            for key, _ in sel.select(left):
                fd = key.fd
                if fd == stdin:
                    try:
                        pending = pending[os.write(stdin, pending[:65536]):]
                    except BrokenPipeError:
                        pending = pending[:0]  # gpg stopped reading: its status says why
                    if not pending:
                        sel.unregister(stdin)
                        proc.stdin.close()
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    sel.unregister(fd)
                    continue
                buf = bufs[fd]
                buf += chunk
                if len(buf) > caps[fd]:
                    stream = "output" if fd == stdout else "messages"
                    raise LimitExceededError(
                        f"gpg's {stream} {what} passed {caps[fd]} bytes, and gpg was "
                        "stopped (a wrapped data key is 32 bytes: the key entry was altered)")
    return bytes(bufs[stdout]), bytes(bufs[stderr])


def _missing_gpg(env: Mapping[str, str]) -> SecretOpsError:
    return SecretOpsError(
        f"the gpg program {gpg_program(env)!r} was not found, so PGP keys cannot be used",
        code=ExitCode.ERROR_ENCRYPTING_TREE,
        hints=("install GnuPG (gnupg), or point SOPS_GPG_EXEC at the gpg binary",),
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PgpRecipient:
    """Wraps a data key for one PGP public key, found by fingerprint in the gpg keyring."""

    kind = KIND

    def __init__(self, fingerprint: str, env: Mapping[str, str],
                 now: Callable[[], datetime] = _utc_now) -> None:
        self.fingerprint = fingerprint
        self._env = dict(env)
        self._now = now
        exe = find_gpg(env)
        if exe is None:
            raise _missing_gpg(env)
        self._exe = exe

    def __repr__(self) -> str:
        return f"PgpRecipient({self.fingerprint!r})"

    def wrap(self, data_key: bytes) -> KeyEntry:
        args = ["--no-default-recipient", "--yes", "--encrypt", "-a", "-r", self.fingerprint,
                "--trusted-key", _short_id(self.fingerprint), "--no-encrypt-to"]
        try:
            p = _run(self._exe, args, data_key, self._env, f"encrypting to {self.fingerprint}",
                     _MAX_WRAPPED)
        except (GpgError, LimitExceededError) as e:
            raise SecretOpsError(str(e), code=ExitCode.ERROR_ENCRYPTING_TREE) from None
        enc = p.stdout.strip()
        if p.returncode != 0 or not enc.startswith(b"-----BEGIN PGP MESSAGE-----"):
            raise SecretOpsError(
                f"gpg could not encrypt to PGP key {self.fingerprint}: {_detail(p.stderr)}",
                code=ExitCode.ERROR_ENCRYPTING_TREE,
                hints=("the public key must be in the gpg keyring (GNUPGHOME): "
                       f"gpg --import it, or check gpg --list-keys {self.fingerprint}",),
            )
        created = self._now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return KeyEntry(KIND, {"created_at": created, "enc": enc.decode("ascii"),
                               "fp": self.fingerprint})


class GpgIdentity:
    """Whatever secret keys the gpg keyring holds; which ones fit is known only on unwrap."""

    kind = KIND

    def __init__(self, exe: str, env: Mapping[str, str]) -> None:
        self.exe = exe
        self._env = dict(env)

    def __repr__(self) -> str:
        return f"GpgIdentity({self.exe!r})"

    def unwrap(self, entry: KeyEntry) -> bytes:
        if entry.kind != KIND:
            raise KeyMismatch()
        fp = str(entry.fields.get("fp", "?"))
        try:  # before gpg runs: what it would ask passphrases for, or read past the message
            read_message(entry.enc)
        except PgpMessageError as e:
            raise GpgError(f"the key entry for PGP key {fp} was not given to gpg: {e}") from None
        p = _run(self.exe, ["--status-fd", "2", "--decrypt"], entry.enc.encode("utf-8"),
                 self._env, f"decrypting the data key for {fp}", MAX_GPG_OUTPUT)
        if p.returncode == 0:
            if not p.stdout:  # an old gpg may drop AEAD packets it cannot read (sops #896)
                raise GpgError(f"gpg returned no data key for PGP key {fp}")
            return p.stdout
        codes = {words[0] for words in _status(p.stderr) if words}
        # An unreachable gpg-agent also yields NO_SECKEY; its messages name the agent.
        agent_trouble = any("agent" in m.lower() for m in _messages(p.stderr))
        if "NO_SECKEY" in codes and "ERROR" not in codes and not agent_trouble:
            raise KeyMismatch()
        raise GpgError(
            f"gpg could not decrypt the data key for PGP key {fp}: {_detail(p.stderr)}"
        )


def recipient(fields: Mapping[str, Any], env: Mapping[str, str]) -> PgpRecipient:
    """The key-source interface (see :mod:`secretops.keys`)."""
    return PgpRecipient(str(fields["fp"]), env)


def identity(env: Mapping[str, str]) -> GpgIdentity | None:
    """The key-source interface: the gpg keyring when gpg is installed, else None."""
    exe = find_gpg(env)
    return GpgIdentity(exe, env) if exe is not None else None


def pgp_spec(fingerprint: str) -> KeySpec:
    """A fingerprint kept as typed (sops stores it so); a trailing ``!`` forces that subkey."""
    fp = fingerprint.replace(" ", "")
    hexpart = fp[:-1] if fp.endswith("!") else fp
    if not hexpart or not all(c in "0123456789ABCDEFabcdef" for c in hexpart):
        raise SecretOpsError(f"invalid PGP fingerprint {fingerprint!r}", code=ExitCode.INVALID_KEY)
    return KeySpec(KIND, {"fp": fp})


SOURCE = KeySource(
    KIND,
    title="PGP",
    describe=lambda f: f"PGP key {f.get('fp', '?')}",
    identity_fields=("fp",),
    upper_fields=("fp",),
    flag="pgp",
    short="p",
    metavar="FPRS",
    help="PGP fingerprints (through gpg)",
    example="FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4",
    env="SOPS_PGP_FP",
    config_key="pgp",
    group_key="pgp",
    parse=lambda value, options: pgp_spec(value),
    recipient=recipient,
    identity=identity,
    no_identity_hint="for PGP keys, import the secret key into the keyring gpg uses (GNUPGHOME); "
                     "gpg --list-secret-keys shows what it has",
    wire=WireKey(2, ("fp",)),
)
