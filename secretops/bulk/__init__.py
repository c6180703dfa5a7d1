"""Many files per command, over every core: what ``decrypt``, ``encrypt -i``, ``updatekeys``,
``rotate -i``, ``check`` and ``filestatus`` do when given several files, directories or a
``--files-from`` list.

The parts, each in its own module:

* :mod:`.paths` — which files: named ones, directories walked the way git sees them (what it
  ignores is skipped), ``--files-from`` lists (newline- or NUL-separated);
* :mod:`secretops.discover` — which of the files *found* in directories a command applies to;
* :mod:`.pool` — a pool of worker processes, one per core, fed a few files at a time, that
  yields each file's outcome in order and never lets one file's failure touch another;
* :mod:`.jobs`, :mod:`.keyjobs` — each command's work on one file;
* :mod:`.outdir` — ``decrypt --output-dir``: the mirrored tree, and where plaintext must not go.

The CLI (:mod:`secretops.cli._bulk`) prints the outcomes, a progress bar on a terminal, the
failures and a count at the end, and exits with ``SOME_FILES_FAILED`` (180) when some files
failed — or with the files' own code when every file failed the same way (``docs/usage.md``,
"Many files at once"). Nothing here imports click.
"""
