"""The binary store: any file as one string value, kept in a JSON envelope when encrypted.

As in sops 3.11 (``BinaryStore`` in ``stores/json/store.go``):

* a plaintext file of any content is the document ``{data: <the whole file>}``; the value is a
  ``str`` (sops uses the raw bytes as a Go string). Bytes that are not UTF-8 are kept as
  surrogate escapes (``surrogateescape``), so they are encrypted and written back byte for byte;
* the encrypted file is JSON in the JSON store's layout: ``{"data": "ENC[…type:str]", "sops": …}``
  (an empty file gives ``"data": ""``, which is never encrypted);
* writing a decrypted document writes the ``data`` value's bytes back and nothing else.

sops picks the reading (raw or JSON envelope) from the command; :meth:`BinaryStore.load` has no
command, so it reads a file as an envelope when it is a JSON object with a top-level ``sops``
object, and as raw data otherwise.
"""

from __future__ import annotations

import re
from typing import Any

from secretops.core.tree import Branch
from secretops.errors import DumpError, FormatError
from secretops.limits import check_input_size
from secretops.stores import Loaded, StoreOptions
from secretops.stores.json import JsonStore

_ENVELOPE = re.compile(rb'\A[ \t\r\n]*\{.*"sops"', re.DOTALL)


class BinaryStore:
    """Any file that is not YAML, JSON, dotenv or INI."""

    name = "binary"

    def __init__(self, options: StoreOptions) -> None:
        self.options = options
        self._json = JsonStore(options)

    def load(self, data: bytes) -> Loaded:
        check_input_size(data)
        if _ENVELOPE.match(data):
            try:
                loaded = self._json.load(data)
            except FormatError:
                loaded = None
            if loaded is not None and loaded.metadata is not None:
                return loaded
        text = data.decode("utf-8", "surrogateescape")
        return Loaded(docs=[Branch([("data", text)])])

    def emit(self, docs: list[Branch], metadata: Branch | None, layout: Any = None) -> bytes:
        if metadata is not None:
            return self._json.emit(docs, metadata)
        if len(docs) != 1:
            raise DumpError("a binary file holds exactly one document")
        doc = docs[0]
        if not any(type(i) is tuple and i[0] == "data" for i in doc):
            raise DumpError("no binary data found in the tree (no 'data' key)")
        value = doc.get("data")
        if isinstance(value, bytes):
            return value
        if not isinstance(value, str):
            raise DumpError("the 'data' key in the tree does not have a string value")
        return value.encode("utf-8", "surrogateescape")

    def emit_value(self, value: Any) -> bytes:
        raise DumpError("binary files are not structured and extracting a single value is not "
                        "possible")
