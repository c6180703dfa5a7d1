"""Providers: one module per source (:mod:`.vault`, :mod:`.aws`), each its client built in one
private function, each implementing :class:`secretops_controller.external.provider.Provider`."""
