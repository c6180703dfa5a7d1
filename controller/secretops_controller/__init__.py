"""The secretops controller: a kopf operator running in the cluster.

A thin shell over the ``secretops`` library (sealing, key sources): it unseals SealedSecrets into
Secrets and syncs external secrets. It is a separate distribution (``controller/pyproject.toml``)
so the CLI never pulls in kopf or the Kubernetes client, and the library never imports it.
It talks to the API server with in-cluster config or a kubeconfig; there is no test-only path.
"""
