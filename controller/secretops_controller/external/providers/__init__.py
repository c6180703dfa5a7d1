"""The providers, and the one table that lists them.

A provider is one module (its client built in one private function) implementing
:class:`secretops_controller.external.provider.Provider`, plus the optional abilities it has
as the protocols of that module say (:class:`~..provider.Finder` for ``dataFrom.find``,
:class:`~..provider.Writer` for rotation write-back, :class:`~..provider.Checker` for a store
validation cheaper than a read). Its ``from_store`` turns ``spec.provider.<key>`` of a store
into a factory bound to the store's credentials (:mod:`..storeconfig`).

:data:`REGISTRY` maps the key under ``spec.provider`` to that function: adding a provider is
its module and one line here (and its schema under ``spec.provider`` in the store CRDs).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from secretops_controller.external.providers import aws, vault_store
from secretops_controller.external.storeconfig import Factory, StoreSpec

FromStore = Callable[[Mapping[str, Any], str, StoreSpec], Awaitable[Factory]]

REGISTRY: dict[str, FromStore] = {
    "vault": vault_store.from_store,
    "aws": aws.from_store,
}
