"""Everything git-facing, over the library: what git shows, merges and lets through.

* :mod:`.textconv` — what ``git diff`` / ``git log -p`` show for an encrypted file (the
  textconv driver): the decrypted text, or a masked version when it cannot be decrypted;
* :mod:`.merge` — the merge driver: a three-way merge of an encrypted file's values, keeping
  unchanged values' ciphertext;
* :mod:`.attributes` — ``.gitattributes`` lines from the ``.sops.yaml`` creation rules;
* :mod:`.guard` — the pre-commit check that no plaintext a rule would encrypt is committed.

The commands that run them are ``cli/git.py`` and ``cli/gitdrivers.py``.
"""
