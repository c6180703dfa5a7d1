"""The limits a hostile file meets before any key is used (``docs/security.md``, "Limits on
keys and key entries").

sops and age set none of these; both are linear in what they read. secretops bounds what it
reads from a file's ``sops:`` metadata, an age message and gpg, so that a file someone else
wrote cannot make ``decrypt``, ``textconv`` or the controller hang or exhaust memory, and so
that every file within the limits still opens at once. Each limit is far above what sops,
age or secretops write: a sops age entry holds one recipient's stanza (plus one decoy stanza
rage adds), a wrapped data key is 32 bytes.

One place for the numbers: the code checks them, ``docs/security.md`` lists them, and a test
keeps the two in step.
"""

from __future__ import annotations

# -- the sops: metadata of a file --------------------------------------------------------------
#: Key entries in one file: every entry of every key source (``sops.age``, ``sops.pgp``,
#: ``sops.kms``, …) in every key group, together.
MAX_KEY_ENTRIES = 100
#: Key groups in one file (Shamir: each group holds one share).
MAX_KEY_GROUPS = 32
#: Characters in one key entry's wrapped data key (``enc``), of any key source.
MAX_ENC_CHARS = 64 * 1024

# -- one age message (a sops age entry's ``enc``, the wrapped key of a sealed value) ------------
#: Recipient stanzas in one age header, decoy ("grease") stanzas included.
MAX_AGE_STANZAS = 64
#: Bytes of one stanza: its ``->`` line and its body.
MAX_AGE_STANZA_BYTES = 4 * 1024
#: Bytes of the whole header, version line to MAC line.
MAX_AGE_HEADER_BYTES = 16 * 1024
#: Bytes after the header: the nonce and the encrypted payload (a 32-byte data key needs 64).
MAX_AGE_PAYLOAD_BYTES = 1024
#: Recipients a value is sealed for (one stanza each; the rest of MAX_AGE_STANZAS is left
#: for the decoy stanzas age libraries add).
MAX_SEAL_RECIPIENTS = 50

# -- one PGP message (a sops pgp entry's enc) ----------------------------------------------------
#: Public-key encrypted session key packets in one message, one per recipient key (sops writes
#: one). gpg tries a secret key, maybe asking for its passphrase, for each.
MAX_PGP_KEY_PACKETS = 16

# -- gpg -----------------------------------------------------------------------------------------
#: Bytes read from gpg's standard output when it unwraps a data key (a key is 32 bytes; gpg is
#: stopped past this, and also told ``--max-output``).
MAX_GPG_OUTPUT = 4 * 1024
#: Bytes of gpg's messages and status lines kept from its standard error.
MAX_GPG_STDERR = 64 * 1024

#: The data key is 32 bytes; a Shamir share of it 33 (the key's bytes, then its x coordinate).
DATA_KEY_SIZE = 32
SHARE_SIZE = DATA_KEY_SIZE + 1
