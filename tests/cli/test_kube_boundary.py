"""One module of the CLI talks to clusters: ``secretops/cli/_kube.py`` (docs/architecture.md).

Everything else asks it: no other module runs kubectl, reads where the kubeconfig is, builds an
API server path or sends a credential. A second hand-written client is how the CLI came to read
one kubeconfig file of several and no credential plugin (issue 18).
"""

from __future__ import annotations

import re
from pathlib import Path

import secretops

ROOT = Path(secretops.__file__).parent
ONLY = ROOT / "cli" / "_kube.py"
TALKING = {
    "runs kubectl": re.compile(r"""which\(\s*["']kubectl|\[\s*["']kubectl["']"""),
    "finds the kubeconfig": re.compile(
        r"""environ(\.get\(|\[)\s*["']KUBECONFIG|expanduser\(\s*["']~/\.kube"""),
    "builds an API server path": re.compile(r"[\"']/api/v1/|[\"']/apis/"),
    "sends a credential": re.compile(r"""["']Authorization["']|Bearer \{"""),
}


# modules that send a credential to a service that is not a cluster (the key source that signs
# its own HTTP requests: HuaweiCloud KMS's AK/SK signature goes in an Authorization header)
NOT_CLUSTERS = {ROOT / "keys" / "hckms.py": {"sends a credential"}}


def test_only_the_kube_module_talks_to_clusters() -> None:
    found = [f"{path.relative_to(ROOT)}: {what}"
             for path in ROOT.rglob("*.py") if path != ONLY
             for what, pattern in TALKING.items()
             if what not in NOT_CLUSTERS.get(path, set())
             and pattern.search(path.read_text("utf-8"))]
    assert found == []


def test_the_kube_module_does_each_of_those() -> None:
    text = ONLY.read_text("utf-8")
    assert [what for what, pattern in TALKING.items()
            if what != "sends a credential" and not pattern.search(text)] == []
    assert not TALKING["sends a credential"].search(text)  # kubectl holds the credentials
