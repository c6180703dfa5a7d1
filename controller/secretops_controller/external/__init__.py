"""External secrets: values kept in Vault / OpenBao or AWS, synced into Kubernetes Secrets.

This package is the ExternalSecret half; these modules need no Kubernetes API:

* :mod:`.provider` — the small protocol every provider implements (``read_many``, ``versions``,
  ``close``) and its optional abilities as protocols (``Finder``, ``Writer``, ``Checker``), the
  value and error types;
* :mod:`.providers` — the one registry (``REGISTRY``: the name under ``spec.provider`` → the
  provider module's ``from_store``); :mod:`.providers.vault` (with :mod:`.providers.vault_store`)
  and :mod:`.providers.aws` — Vault KV v2 (token, AppRole, Kubernetes auth) and AWS Secrets
  Manager / SSM Parameter Store (batched reads);
* :mod:`.scheduler` — one central scheduler and coalescing cache: one provider read per distinct
  (store, credentials, remote key) per refresh window, new objects first, jitter, backoff;
* :mod:`.mapping` — remote values → Secret data (property, decoding, ``dataFrom``,
  templates);
* :mod:`.ownership` — who may write a Secret: the claims recorded on it, the winner of a
  conflict, what a failing ExternalSecret may say of the Secret;
* :mod:`.fingerprint` — the keyed fingerprint of a Secret's data that the cluster shows, and
  its key (a Secret in the controller's namespace).

The reconcile loop that ties these to store and ExternalSecret objects is :mod:`.reconcile`
(kopf handlers and the state of a leadership term), split by concern: :mod:`.spec` (an
ExternalSecret's spec and store checked), :mod:`.storecheck` (stores through the API,
validation), :mod:`.sync` (the Secret written), :mod:`.status` (conditions, status, Events),
:mod:`.drift` (our Secrets watched), :mod:`.rotator` (rotation timer); :mod:`.stores` and
:mod:`.storeconfig` turn a store object into a provider.
"""
