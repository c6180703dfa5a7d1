"""Everything git-facing, over the library: what git shows, merges and lets through.

* :mod:`.textconv` — what ``git diff`` / ``git log -p`` show for an encrypted file (the
  textconv driver): the decrypted text, or a masked version when it cannot be decrypted;
* :mod:`.merge` — the merge driver: a three-way merge of an encrypted file's values, keeping
  unchanged values' ciphertext;
* :mod:`.attributes` — ``.gitattributes`` lines from the ``.sops.yaml`` creation rules;
* :mod:`.guard` — the pre-commit check that no plaintext a rule would encrypt is committed;
* :mod:`.history` — ``secretops log -p``: git's log with encrypted files' patches replaced by
  diffs of their decrypted versions, in one process (:mod:`.logstream` reads ``git log``,
  :mod:`.catfile` reads versions, :mod:`.versions` decrypts them reusing data keys,
  :mod:`.hunks` and :mod:`.slide` write the hunks as git does).

The commands that run them are ``cli/git.py``, ``cli/gitdrivers.py`` and ``cli/log.py``.
"""
