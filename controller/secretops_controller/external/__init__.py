"""External secrets: values kept in Vault / OpenBao or AWS, synced into Kubernetes Secrets.

This package is the ExternalSecret half; these modules need no Kubernetes API:

* :mod:`.provider` — the small protocol every provider implements (``read_many``, ``versions``,
  and optionally ``find``), the value and error types;
* :mod:`.providers.vault`, :mod:`.providers.aws` — Vault KV v2 (token, AppRole, Kubernetes
  auth) and AWS Secrets Manager / SSM Parameter Store (batched reads);
* :mod:`.scheduler` — one central scheduler and coalescing cache: one provider read per distinct
  (store, credentials, remote key) per refresh window, new objects first, jitter, backoff;
* :mod:`.mapping` — remote values → Secret data (property, decoding, ``dataFrom``,
  templates);
* :mod:`.ownership` — who may write a Secret: the claims recorded on it, the winner of a
  conflict, what a failing ExternalSecret may say of the Secret;
* :mod:`.fingerprint` — the keyed fingerprint of a Secret's data that the cluster shows, and
  its key (a Secret in the controller's namespace).

The reconcile loop that ties these to store and ExternalSecret objects (kopf handlers, Secret
writes, status, drift watch) is :mod:`.reconcile`, with :mod:`.stores` (store → provider
with resolved credentials; ClusterSecretStore conditions).
"""
