"""The fuzz targets: every parser the CLI reaches, each with the strategy that feeds it.

Each target's ``run`` takes one input's bytes and calls, in-process, the functions the CLI and
the controller call on such input; every call runs even when an earlier one refused the input,
so one input tests them all. Allowed to escape: :class:`~secretops.errors.SecretOpsError`, and
where a target sits below the CLI's error layer, the typed errors the module documents (named
in its ``typed``). What each target covers is listed in ``docs/testing.md`` ("Fuzzing").
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from secretops.core.agemsg import AgeMessageError
from secretops.core.cipher import CipherError
from secretops.errors import ExitCode, SecretOpsError
from secretops.keys import KeyMismatch
from secretops.keys.age import AgePluginError
from secretops.keys.pgp import GpgError
from tests.fuzz import harness, seeds
from tests.fuzz.harness import Target
from tests.fuzz.mutate import mutated
from tests.fuzz.strategies import (
    SHAPES,
    age_mutations,
    dump,
    enc_strings,
    mutated_files,
    sealed_value_mutations,
    tree_mutations,
)

_CONVERT = {"yaml": "json", "json": "yaml", "dotenv": "yaml", "ini": "json", "binary": "yaml"}
_SUFFIX = {"yaml": ".yaml", "json": ".json", "dotenv": ".env", "ini": ".ini", "binary": ".bin"}


@dataclass(frozen=True)
class Fuzz:
    """A target, the strategy of its inputs, and a seed to warm the parent process with."""

    target: Target
    inputs: Callable[[], st.SearchStrategy[bytes]]
    warm_seed: Callable[[], bytes]
    weight: float = 1.0  # the long run's share of inputs: gpg makes pgp-entry's ~20x dearer


def each(*calls: Callable[[], object], typed: tuple[type[BaseException], ...] = ()) -> None:
    """Run every call; a typed error of one does not stop the next, and the first is raised
    once all have run (the harness counts it as the input's outcome, with how each call ended
    when they differ: :data:`harness.CALLS`). Anything else propagates at once."""
    first: BaseException | None = None
    ended: list[str] = []
    for call in calls:
        try:
            call()
            ended.append("ok")
        except (SecretOpsError, *typed) as e:
            first = first or e
            ended.append(harness.call_name(e))
    harness.CALLS[:] = ended
    if first is not None:
        raise first


# --- the stores: decrypt, encrypt, set, textconv, check, the merge driver, filestatus --------

def _store_run(fmt: str) -> Callable[[bytes], None]:
    from secretops import api, fileops
    from secretops.git.guard import check_data
    from secretops.git.merge import is_sops_file, merge_files
    from secretops.git.textconv import textconv

    name = "secret" + _SUFFIX[fmt]

    def edit(data: bytes) -> None:
        opened = fileops.open_file(data, format=fmt, env=seeds.env())
        first = opened.docs[0] if opened.docs else []
        key = first[0][0] if first and isinstance(first[0], tuple) else "fuzz"
        path: list[str | int] = [key] if fmt != "ini" else ["fuzz", "k"]
        fileops.set_value(opened, path, "value")
        fileops.unset_value(fileops.open_file(data, format=fmt, env=seeds.env()), path)

    def run(data: bytes) -> None:
        env = seeds.env()
        base, ours = seeds.merge_sides(fmt)
        out: list[bytes] = []
        each(lambda: api.decrypt(data, format=fmt, env=env),
             lambda: api.decrypt(data, format=fmt, output_format=_CONVERT[fmt], env=env),
             lambda: api.encrypt(data, format=fmt, age=[seeds.recipient()], env={}),
             lambda: edit(data),
             lambda: out.append(textconv(data, name, env)),
             lambda: check_data(name, data, fmt=fmt),
             lambda: is_sops_file(data, fmt),
             lambda: fileops.is_encrypted(data, fmt),
             lambda: merge_files(base, ours, data, fmt, env=env))
        assert len(out) == 1 and isinstance(out[0], bytes), "textconv must always answer"

    return run


def _store(fmt: str) -> Fuzz:
    tree: list[Callable[[], st.SearchStrategy[bytes]]] = []
    if fmt in ("yaml", "json"):
        tree.append(lambda: mutated_files(fmt).map(lambda c: c[2]))
    return Fuzz(Target(f"store-{fmt}", _store_run(fmt), _SUFFIX[fmt]),
                lambda: st.one_of(mutated(seeds.store_seeds(fmt), fmt),
                                  *(t() for t in tree)),
                lambda: seeds.store_seeds(fmt)[0])


# --- the ENC value and the sops: metadata ------------------------------------------------------

_DATA_KEY = bytes(range(32))


@st.composite
def _enc_values(draw: st.DrawFn) -> bytes:
    from secretops.core.cipher import ValueCipher

    cipher = ValueCipher(_DATA_KEY, lambda n: bytes(n))
    value = draw(st.sampled_from(["s3cret", 5, -1.5, True, "é" * 40, 2**70]))
    text = cipher.encrypt(value, "a:")
    how = draw(st.integers(0, 2))
    if how == 0:
        text = draw(enc_strings(text))
    elif how == 1:
        return draw(mutated([text.encode()], "yaml"))
    return text.encode("utf-8", "surrogatepass")


_ENC_TYPED = (CipherError,)  # documented: ValueCipher.open's only error


def _enc_run(data: bytes) -> None:
    from secretops.core.cipher import ValueCipher, enc_fields

    text = data.decode("utf-8", "surrogateescape")
    each(lambda: enc_fields(text),
         lambda: ValueCipher(_DATA_KEY, lambda n: bytes(n)).open(text, "a:"),
         lambda: ValueCipher(_DATA_KEY, lambda n: bytes(n), remember=False).open(text, "b:"),
         typed=_ENC_TYPED)


def _metadata_run(data: bytes) -> None:
    """The sops: metadata of a YAML or JSON file, mutated as a tree (see strategies.py)."""
    fmt = "json" if data.lstrip().startswith(b"{") else "yaml"
    _store_run(fmt)(data)


# --- age and PGP entries -----------------------------------------------------------------------

#: documented: read_message's two errors, and an identity's "not mine" and plugin failure
_AGE_TYPED = (AgeMessageError, KeyMismatch, AgePluginError)


def _age_run(data: bytes) -> None:
    from secretops import api
    from secretops.core.agemsg import read_message
    from secretops.keys.age import parse_identities, unwrap_message

    ids = parse_identities(seeds.KEY_FILE.read_text(), "key")

    def unwrap() -> None:
        try:
            unwrap_message(data, ids)
        except RuntimeError as e:  # documented: a RuntimeError with one of these texts
            if type(e) is not RuntimeError or not str(e).startswith(
                    ("the wrapped key is not a valid age message", "age could not decrypt")):
                raise

    doc = copy.deepcopy(seeds.yaml_doc())
    doc["sops"]["age"][0]["enc"] = data.decode("utf-8", "replace")  # type: ignore[index]
    each(lambda: read_message(data), unwrap,
         lambda: api.decrypt(dump(doc, "yaml"), format="yaml", env=seeds.env()),
         typed=_AGE_TYPED)


_PGP_TYPED = (KeyMismatch, GpgError)  # documented: GpgIdentity.unwrap's errors


def _pgp_run(data: bytes) -> None:
    from secretops import api
    from secretops.core.metadata import KeyEntry
    from secretops.keys.pgp import GpgIdentity

    home, fpr = seeds.gpg_home()
    env = seeds.env(GNUPGHOME=home)
    text = data.decode("utf-8", "replace")
    doc = copy.deepcopy(seeds.yaml_doc(seeds.PGP_SOPS_FILE))  # sops-made, for two PGP keys
    doc["sops"]["pgp"][0]["enc"] = text  # type: ignore[index]
    each(lambda: GpgIdentity("gpg", env).unwrap(KeyEntry("pgp", {"fp": fpr, "enc": text})),
         lambda: api.decrypt(dump(doc, "yaml"), format="yaml", env=env),
         typed=_PGP_TYPED)


# --- .sops.yaml --------------------------------------------------------------------------------

def _config_run(data: bytes) -> None:
    import os
    import shutil
    import tempfile

    from click.testing import CliRunner

    from secretops import api
    from secretops.cli.app import cli
    from secretops.config import load_config
    from secretops.git.guard import Policy
    from secretops.publish import prepare

    top = Path(tempfile.mkdtemp(dir=seeds.workdir()))
    (top / "secrets").mkdir()
    cfg = top / ".sops.yaml"
    cfg.write_bytes(data)
    target = top / "secrets" / "a.yaml"
    target.write_bytes(seeds.store_seeds("yaml")[0])
    env = {**seeds.env(), "SOPS_AGE_KEY_FILE": str(seeds.KEY_FILE)}

    def config() -> None:
        c = load_config(cfg)
        c.rule_for(str(target))
        for fmt in _SUFFIX:
            c.store_options(fmt)

    def cli_run(*args: str) -> None:
        old = os.getcwd()
        os.chdir(top)
        try:
            r = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=True)
        finally:
            os.chdir(old)
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise r.exception
        assert "Traceback" not in r.output, r.output

    try:
        each(config,
             lambda: api.encrypt(b"a: 1\n", filename=str(target), env={}),
             lambda: Policy(env, str(cfg), None).verdict("secrets/a.yaml", b"a: 1\n"),
             lambda: cli_run("check", "--config", str(cfg), "secrets"),
             lambda: cli_run("updatekeys", "-y", "--config", str(cfg), str(target)),
             lambda: cli_run("status", "-j", "1", "--config", str(cfg), "secrets"),
             lambda: cli_run("status", "-j", "1", "--json", str(target)),
             lambda: prepare(str(target), load_config(cfg), env))
    finally:
        shutil.rmtree(top, ignore_errors=True)


# --- status: files and their git history, read without a key ----------------------------------

_STATUS_CONFIG = "creation_rules:\n  - path_regex: secrets/\n    age: {r}\n"


def _status_run(data: bytes) -> None:
    """One input as a working-tree file (YAML and JSON) and as the committed version of a
    file whose working copy is a valid one: ``status`` reads both (the history for the data
    key's age). In-process job first (untyped errors propagate), then the command."""
    import json
    import os
    import shutil
    import subprocess
    import tempfile

    from click.testing import CliRunner

    from secretops.bulk.inventory import InventoryJob
    from secretops.bulk.paths import Item
    from secretops.cli.app import cli

    top = Path(tempfile.mkdtemp(dir=seeds.workdir()))
    secrets = top / "secrets"
    secrets.mkdir()
    (top / ".sops.yaml").write_text(_STATUS_CONFIG.format(r=seeds.recipient()))

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(top), "-c", "user.name=f", "-c",
                        "user.email=f@example.invalid", "-c", "commit.gpgsign=false", *args],
                       stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=60,
                       env={"HOME": str(seeds.workdir()), "GIT_CONFIG_NOSYSTEM": "1",
                            "PATH": os.environ.get("PATH", "")})

    env = {**seeds.env(), "SOPS_AGE_KEY_FILE": str(top / "no-key-is-read")}
    try:
        git("init", "-q")
        (secrets / "old.yaml").write_bytes(data)
        git("add", "-A")
        git("commit", "-q", "-m", "fuzz")
        (secrets / "old.yaml").write_bytes(seeds.store_seeds("yaml")[0])
        (secrets / "now.yaml").write_bytes(data)
        (secrets / "now.json").write_bytes(data)
        job = InventoryJob(env, input_type=None, config_path=None, max_age=86400.0, now=0.0)
        job.state = {}
        job.setup()
        old = os.getcwd()
        os.chdir(top)
        try:
            each(*(lambda name=name, named=named: job(Item(f"secrets/{name}", named))
                   for name in ("old.yaml", "now.yaml", "now.json") for named in (True, False)))
            r = CliRunner().invoke(cli, ["status", "-j", "1", "--json", "--older-than", "1d"],
                                   env=env, catch_exceptions=True)
        finally:
            os.chdir(old)
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise r.exception
        doc = json.loads(r.stdout)  # a document whatever the files hold
        assert doc["exit_code"] == r.exit_code and r.exit_code in _CODES | {0}, r.output
    finally:
        shutil.rmtree(top, ignore_errors=True)


# --- SealedSecrets -----------------------------------------------------------------------------

def _sealed_run(data: bytes) -> None:
    from secretops.sealing import reseal_sealed, verify_sealed
    from secretops.sealing.format import parse_sealed, template_data
    from secretops.sealing.sealed import merge_into, unseal_values
    from secretops.sealing.serialize import dump as dump_manifest
    from secretops.sealing.serialize import load_documents
    from secretops.sealing.template import render_here

    ids: Any = seeds.sealing_identities()

    def unseal(doc: dict[str, Any]) -> None:
        parts, values, _ = unseal_values(doc, ids)
        reply = render_here(template_data(parts.template), values)
        assert set(reply) <= {"ok", "fail", "key", "retire"}, reply

    def each_doc(fn: Callable[[dict[str, Any]], object]) -> None:
        each(*(lambda d=doc: fn(d) for doc in load_documents(data, "sealed.yaml")[:3]))

    each(lambda: each_doc(parse_sealed), lambda: each_doc(unseal),
         lambda: each_doc(lambda d: verify_sealed(d, ids, render=False)),
         lambda: each_doc(lambda d: dump_manifest(
             reseal_sealed(d, ids, [seeds.recipient()], keep_unbound=True))),
         lambda: each_doc(lambda d: reseal_sealed(d, ids, [seeds.recipient()],
                                                  namespace="prod", bind_template=True)),
         lambda: each_doc(lambda d: merge_into(d, {"new": b"v"}, [seeds.recipient()])))


def _sealed_value_run(data: bytes) -> None:
    from secretops.sealing.crypto import unseal_value
    from secretops.sealing.format import decode

    text = data.decode("utf-8", "replace")
    ids: Any = seeds.sealing_identities()
    each(lambda: decode(text),
         *(lambda s=scope, k=key: unseal_value(text, ids, s, "prod", "db", k)
           for scope in ("strict", "namespace-wide", "cluster-wide")
           for key in ("user", "password")))


def _keys_run(data: bytes) -> None:
    from secretops.sealing.bitnami import load_keys
    from secretops.sealing.keyring import load_identities, parse_recipients_file

    each(lambda: load_identities(data, "identity.txt"),
         lambda: parse_recipients_file(data.decode("utf-8", "replace"), "cert.txt"),
         lambda: load_keys(data, "keys.yaml"))


def _bitnami_run(data: bytes) -> None:
    from secretops.sealing.bitnami import convert
    from secretops.sealing.serialize import load_documents

    keys: Any = seeds.bitnami_keys()
    docs = load_documents(data, "bitnami.yaml")[:2]
    for doc in docs:
        each(lambda d=doc: convert(d, keys, [seeds.recipient()]),  # type: ignore[misc]
             lambda d=doc: convert(d, keys, [seeds.recipient()], namespace="prod",  # type: ignore[misc]
                                   bind_template=True))


# --- External Secrets --------------------------------------------------------------------------

def _eso_run(data: bytes) -> None:
    import json

    from secretops.eso import convert_all
    from secretops.sealing.serialize import dump as dump_manifest
    from secretops.sealing.serialize import load_documents

    out, issues = convert_all(load_documents(data, "eso.yaml"))
    assert all(isinstance(o, dict) for o in out)
    assert all(i.path and i.message for i in issues)
    json.dumps(out)
    for o in out:
        dump_manifest(o, "yaml")


# --- the controller's request bodies -----------------------------------------------------------

_CODES = {int(c) for c in ExitCode}


def _controller_run(op: str) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        from secretops.sealing.worker import _sealed

        ring = [ln for p in (seeds.KEY_FILE, seeds.V1_KEY_FILE)
                for ln in p.read_text().splitlines() if ln.startswith("AGE-SECRET-KEY-")]
        job = {"op": op, "body": base64.b64encode(data).decode(), "identities": ring,
               "recipients": [seeds.recipient()], "format": "yaml"}
        reply = _sealed(job)
        assert set(reply) in ({"ok"}, {"error"}), reply
        if "error" in reply:  # the refusal the endpoint answers 409 with
            err = reply["error"]
            assert isinstance(err["message"], str) and err["code"] in _CODES, err
            raise SecretOpsError(err["message"], code=ExitCode(err["code"]))
    return run


class _Aborted(SecretOpsError):
    """What a gRPC context's ``abort`` does: end the call with a status."""


class _Context:
    def peer(self) -> str:
        return "fuzz"

    def abort(self, code: object, details: str) -> None:
        raise _Aborted(f"{code}: {details}")


def _keyservice_run(data: bytes) -> None:
    """One request body, as ``secretops keyservice`` receives it from the network, through both
    calls (age keys only: a mutated request naming a cloud key must not reach for a cloud);
    and the same bytes as the client's settings."""
    from secretops.keyservice import settings
    from secretops.keyservice.server import Service

    service = Service(seeds.env(), kinds=("age",))
    text = data.decode("utf-8", "replace")
    each(lambda: service.decrypt(data, _Context()), lambda: service.encrypt(data, _Context()),
         lambda: settings({"SOPS_KEYSERVICE": text, "SOPS_ENABLE_LOCAL_KEYSERVICE": text[:6]}))


def _git_stream_run(data: bytes) -> None:
    """What ``secretops log`` reads from git: the input as a ``git log -z --raw -p`` stream,
    and as ``git cat-file --batch`` answers (a small limit, so some objects are too large)."""
    import io

    from secretops.git.catfile import BatchReader
    from secretops.git.logstream import read_log

    def log() -> None:
        for _ in read_log(io.BytesIO(data)):
            pass

    def batch() -> None:
        reader = BatchReader(io.BytesIO(), io.BytesIO(data), limit=64)
        for _ in range(len(data) + 1):  # each answer takes at least one byte; then it fails
            reader.read("0" * 40)

    each(log, batch)


def _flip(seed: bytes, at: int, byte: int) -> bytes:
    if not seed:
        return bytes([byte])
    at %= len(seed)
    return seed[:at] + bytes([byte]) + seed[at + 1:]


@st.composite
def _well_formed_request(draw: st.DrawFn) -> bytes:
    """A request that parses, with its fields mutated: an age key (the service's recipient,
    another one, or a mutated one) and a mutated age message as Decrypt's ciphertext, or a
    plaintext of any size as Encrypt's. Byte flips of a serialised request mostly stop at the
    protobuf parse; these reach the key lookup and the age code behind it."""
    from secretops.keyservice.protocol import key_message, messages

    m = messages()
    text = [seeds.recipient(), "age1" + "q" * 58]
    recipient = draw(st.one_of(st.sampled_from(text),
                               mutated([t.encode() for t in text], "armor").map(
                                   lambda b: b.decode("utf-8", "replace"))))
    key = key_message("age", {"recipient": recipient})
    if draw(st.booleans()):
        ciphertext = draw(st.one_of(st.sampled_from(seeds.age_messages()),
                                    mutated(seeds.age_messages(), "armor")))
        return bytes(m.decrypt_request(key=key, ciphertext=ciphertext).SerializeToString())
    plaintext = draw(st.one_of(st.binary(min_size=32, max_size=33), st.binary(max_size=64),
                               st.integers(0, 4096).map(bytes)))
    return bytes(m.encrypt_request(key=key, plaintext=plaintext).SerializeToString())


def _keyservice_inputs() -> st.SearchStrategy[bytes]:
    requests = seeds.keyservice_requests()
    return st.one_of(st.binary(max_size=2048),
                     st.builds(_flip, st.sampled_from(requests), st.integers(0, 1 << 16),
                               st.integers(0, 255)),
                     mutated(requests, "armor"), _well_formed_request())


def _manifests(base: Callable[[], list[bytes]], fmt: str = "yaml"
               ) -> Callable[[], st.SearchStrategy[bytes]]:
    return lambda: st.one_of(mutated(base(), fmt), tree_mutations(base()))


FUZZ: dict[str, Fuzz] = {f.target.name: f for f in [
    *(_store(fmt) for fmt in ("yaml", "json", "dotenv", "ini", "binary")),
    Fuzz(Target("enc-value", _enc_run, ".txt", _ENC_TYPED), _enc_values,
         lambda: b"ENC[AES256_GCM,data:AA==,iv:AAAAAAAAAAAAAAAAAAAAAA==,tag:AA==,type:str]"),
    Fuzz(Target("sops-metadata", _metadata_run, ".yaml"),
         lambda: mutated_files().map(lambda c: c[2]),
         lambda: seeds.store_seeds("yaml")[0]),
    Fuzz(Target("age-entry", _age_run, ".txt", _AGE_TYPED),
         lambda: st.one_of(age_mutations(seeds.age_messages()),
                           mutated(seeds.age_messages(), "armor")),
         lambda: seeds.age_messages()[0]),
    Fuzz(Target("pgp-entry", _pgp_run, ".asc", _PGP_TYPED),
         lambda: mutated(seeds.pgp_messages(), "armor"),
         lambda: seeds.pgp_messages()[0], weight=0.2),
    Fuzz(Target("sops-config", _config_run, ".yaml"),
         lambda: st.one_of(mutated(seeds.config_seeds(), "yaml"),
                           tree_mutations(seeds.config_seeds())),
         lambda: seeds.config_seeds()[0]),
    Fuzz(Target("status", _status_run, ".yaml"),
         lambda: st.one_of(mutated_files().map(lambda c: c[2]),
                           mutated(seeds.store_seeds("yaml"), "yaml"),
                           mutated(seeds.store_seeds("json"), "json")),
         lambda: seeds.store_seeds("yaml")[0], weight=0.3),
    Fuzz(Target("sealed-secret", _sealed_run, ".yaml"), _manifests(seeds.sealed_seeds),
         lambda: seeds.sealed_seeds()[0]),
    Fuzz(Target("sealed-value", _sealed_value_run, ".txt"),
         lambda: st.one_of(sealed_value_mutations(seeds.sealed_values()),
                           mutated(seeds.sealed_values(), "armor")),
         lambda: seeds.sealed_values()[0]),
    Fuzz(Target("sealing-keys", _keys_run, ".txt"),
         lambda: st.one_of(mutated(seeds.key_seeds(), "yaml"),
                           tree_mutations(seeds.key_seeds()[2:4])),
         lambda: seeds.key_seeds()[0]),
    Fuzz(Target("bitnami", _bitnami_run, ".yaml"), _manifests(seeds.bitnami_seeds),
         lambda: seeds.bitnami_seeds()[0]),
    Fuzz(Target("eso", _eso_run, ".yaml"),
         lambda: st.one_of(mutated(seeds.eso_seeds(), "yaml"), tree_mutations(seeds.eso_seeds()),
                           st.lists(st.fixed_dictionaries({"apiVersion": st.just(
                               "external-secrets.io/v1"), "kind": st.sampled_from(
                               ["ExternalSecret", "SecretStore", "ClusterSecretStore"]),
                               "spec": SHAPES}), min_size=1, max_size=2).map(
                               lambda docs: yaml.safe_dump_all(docs).encode())),
         lambda: seeds.eso_seeds()[0]),
    Fuzz(Target("git-log-stream", _git_stream_run, ".bin"),
         lambda: mutated(seeds.git_streams(), "armor"), lambda: seeds.git_streams()[0]),
    Fuzz(Target("keyservice-request", _keyservice_run, ".bin"), _keyservice_inputs,
         lambda: seeds.keyservice_requests()[0]),
    Fuzz(Target("controller-verify", _controller_run("verify"), ".yaml"),
         _manifests(seeds.sealed_seeds), lambda: seeds.sealed_seeds()[0]),
    Fuzz(Target("controller-rotate", _controller_run("reseal"), ".yaml"),
         _manifests(seeds.sealed_seeds), lambda: seeds.sealed_seeds()[0]),
]}
