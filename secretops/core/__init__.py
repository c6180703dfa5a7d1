"""The pure core: value cipher, tree walk, selection rules, MAC, metadata, Shamir.

No file, network, clock or randomness in here: callers pass bytes, trees, the time and a
random source. Enforced by import-linter (see ``pyproject.toml``).
"""
