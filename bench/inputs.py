"""Benchmark inputs: Kubernetes Secrets and nested Helm values, generated deterministically.

Nothing here is committed as data: :func:`write_inputs` writes the files into a temp dir.
Both shapes only use values that YAML 1.1 (PyYAML) and YAML 1.2 (sops's Go parser) read the
same way, so "decrypt equals input after ``yaml.safe_load``" is a fair check for both tools.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from pathlib import Path

SECRET_REGEX = "^(data|stringData)$"
_ALNUM = string.ascii_letters + string.digits
_SEED = 20261123


@dataclass(frozen=True)
class InputSpec:
    """One benchmark input: its name, shape, size and the sops selection flags it is run with."""

    name: str
    kind: str  # "secret" | "helm"
    values: int

    @property
    def encrypt_flags(self) -> list[str]:
        """Flags passed identically to both tools' ``encrypt``."""
        return ["--encrypted-regex", SECRET_REGEX] if self.kind == "secret" else []

    @property
    def filename(self) -> str:
        return f"{self.name}.yaml"


def parse_sizes(text: str) -> list[InputSpec]:
    """``"10,1000,helm5000"`` -> specs. Bare numbers are Secrets; ``helmN`` is Helm values."""
    specs: list[InputSpec] = []
    for raw in text.split(","):
        token = raw.strip().lower().replace("_", "")
        if not token:
            continue
        kind = "secret"
        if token.startswith("helm"):
            kind, token = "helm", token[4:]
        if token.endswith("k") and token[:-1].isdigit():
            token = str(int(token[:-1]) * 1000)
        if not token.isdigit() or int(token) < 1:
            raise ValueError(f"bad size {raw!r}: use e.g. 10,1000,10k,helm5000")
        n = int(token)
        specs.append(InputSpec(f"{kind}_{n}", kind, n))
    return specs


def _alnum(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(_ALNUM, k=n))


def secret_yaml(n: int, seed: int = _SEED) -> str:
    """A Secret with ``n`` 40-char alphanumeric values: the first half in ``data``, the rest in
    ``stringData``."""
    rng = random.Random(seed + n)
    n_data = (n + 1) // 2
    lines = [
        "apiVersion: v1",
        "kind: Secret",
        "metadata:",
        f"  name: bench-secret-{n}",
        "  namespace: default",
        "  labels:",
        "    app.kubernetes.io/name: bench",
        "type: Opaque",
        "data:",
    ]
    lines += [f"  key_{i:06d}: {_alnum(rng, 40)}" for i in range(n_data)]
    lines.append("stringData:")
    lines += [f"  key_{i:06d}: {_alnum(rng, 40)}" for i in range(n_data, n)]
    return "\n".join(lines) + "\n"


# ---- Helm values -------------------------------------------------------------------------------

_WORDS = [
    "api", "worker", "cache", "proxy", "ingress", "gateway", "metrics", "logging", "auth",
    "billing", "search", "queue", "scheduler", "frontend", "backend", "store", "mailer",
    "notifier", "reports", "exporter", "collector", "agent", "broker", "indexer",
]
_KEYS = [
    "enabled", "replicaCount", "image", "repository", "tag", "pullPolicy", "resources", "limits",
    "requests", "cpu", "memory", "service", "port", "targetPort", "annotations", "labels",
    "config", "settings", "timeout", "retries", "endpoint", "url", "host", "path", "username",
    "password", "token", "secretName", "mode", "level", "format", "region", "bucket", "database",
    "schema", "pool", "size", "ttl", "interval", "threshold", "window", "strategy", "policy",
    "selector", "affinity", "zone",
]


class _HelmGen:
    """Random nested maps and lists with an exact leaf budget, written as block YAML."""

    def __init__(self, leaves: int, seed: int) -> None:
        self.rng = random.Random(seed + leaves)
        self.left = leaves
        self.lines: list[str] = []

    def scalar(self) -> str:
        """A leaf: a plain string, a quoted string, an int or a bool (all type-stable)."""
        self.left -= 1
        r = self.rng.random()
        if r < 0.55:  # plain string, starts with a letter, long enough not to be yes/no/on/off
            return self.rng.choice(_WORDS) + "-" + _alnum(self.rng, self.rng.randint(6, 20)).lower()
        if r < 0.65:  # quoted strings, including ones that would otherwise read as numbers
            inner = self.rng.choice([str(self.rng.randint(1, 65535)), "a b " + _alnum(self.rng, 8)])
            return f'"{inner}"'
        if r < 0.85:
            return str(self.rng.randint(0, 100000))
        return self.rng.choice(["true", "false"])

    def key(self, used: set[str]) -> str:
        while True:
            k = self.rng.choice(_KEYS)
            if k in used:
                k = f"{k}{self.rng.randint(2, 99)}"
            if k not in used:
                used.add(k)
                return k

    def comment(self) -> str:
        return "  # " + " ".join(self.rng.choices(_WORDS, k=3)) if self.rng.random() < 0.08 else ""

    def mapping(self, indent: int, depth: int, width: int, stop: int) -> None:
        """Up to ``width`` entries, ending once only ``stop`` leaves are left in the budget."""
        pad = " " * indent
        used: set[str] = set()
        for _ in range(width):
            room = self.left - stop
            if room <= 0:
                return
            k = self.key(used)
            r = self.rng.random()
            if depth < 4 and r < 0.30 and room > 2:
                if self.rng.random() < 0.1:
                    self.lines.append(f"{pad}# {' '.join(self.rng.choices(_WORDS, k=4))}")
                self.lines.append(f"{pad}{k}:")
                self.mapping(indent + 2, depth + 1, self.rng.randint(2, 6), stop)
            elif r < 0.38 and room > 1:
                self.lines.append(f"{pad}{k}:")
                for _ in range(self.rng.randint(1, 5)):
                    if self.left <= stop:
                        break
                    self.lines.append(f"{pad}  - {self.scalar()}")
            elif depth < 4 and r < 0.45 and room > 2:
                self.lines.append(f"{pad}{k}:")
                for _ in range(self.rng.randint(1, 4)):
                    if self.left - stop < 2:
                        break
                    name = self.rng.choice(_KEYS).upper() + "_" + _alnum(self.rng, 4).upper()
                    self.left -= 1
                    self.lines.append(f"{pad}  - name: {name}")
                    self.lines.append(f"{pad}    value: {self.scalar()}")
            else:
                self.lines.append(f"{pad}{k}: {self.scalar()}{self.comment()}")


def helm_yaml(leaves: int, seed: int = _SEED) -> str:
    """Helm-like values with exactly ``leaves`` scalar leaves: ~80-leaf top-level components of
    nested maps (up to 6 levels counting lists), lists of scalars and of name/value maps, and
    some comments (full-line and inline)."""
    gen = _HelmGen(leaves, seed)
    gen.lines.append("# Generated Helm values for the secretops benchmark")
    components = max(1, round(leaves / 80))
    i = 0
    while gen.left > 0:
        name = f"{_WORDS[i % len(_WORDS)]}{i // len(_WORDS) or ''}"
        gen.lines.append(f"# --- component {name} ---")
        gen.lines.append(f"{name}:")
        budget = gen.left if i >= components - 1 else -(-gen.left // (components - i))
        gen.mapping(2, 1, 10_000, gen.left - budget)
        i += 1
    return "\n".join(gen.lines) + "\n"


def text_for(spec: InputSpec) -> str:
    return secret_yaml(spec.values) if spec.kind == "secret" else helm_yaml(spec.values)


def write_input(spec: InputSpec, directory: Path) -> Path:
    path = directory / spec.filename
    path.write_text(text_for(spec), encoding="utf-8")
    return path
