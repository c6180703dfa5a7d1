"""The parts of ``secretops log`` against git itself: hunks as ``git diff`` writes them, the
``git log -z --raw -p`` reader, the ``cat-file --batch`` reader."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secretops.git.catfile import BatchReader, CatFile
from secretops.git.hunks import hunks, split_lines
from secretops.git.logstream import PatchLine, Text, read_log
from tests.helpers import git, git_init

_TOP = b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n"
_ITEMS = b"".join(b"  - name: item%d\n    value: v%d\n" % (i, i) for i in range(6))
# (old, new): edits of the kinds decrypted versions go through, and git's corner cases
CASES = [
    (_TOP + b"stringData:\n  user: admin\n  password: a\n",
     _TOP + b"stringData:\n  user: root\n  password: a\n"),
    (_TOP + b"stringData:\n  user: admin\n", _TOP + b"stringData:\n  user: admin\n  host: h\n"),
    (_TOP + b"data:\n" + b"".join(b"  k%d: v\n" % i for i in range(30)),
     _TOP + b"data:\n" + b"".join(b"  k%d: %s\n" % (i, b"w" if i in (2, 20) else b"v")
                                  for i in range(30))),
    (b"env:\n" + _ITEMS, b"env:\n" + _ITEMS.replace(b"  - name: item3\n",
                                                   b"  - name: new\n    value: n\n"
                                                   b"  - name: item3\n")),
    (b"a:\n  x: 1\n\nb:\n  y: 2\n", b"a:\n  x: 1\n\nc:\n  z: 3\n\nb:\n  y: 2\n"),
    (b"x: 1\ny: 2", b"x: 1\ny: 3"),
    (b"x: 1\n", b"x: 1\n\n\n"),
    (b"x: 1\n", b"x: 1 \ny:\t\n \tz: 2\n"),
    (b"k" * 100 + b":\n" + b"  a: 1\n" * 8 + b"  b: 2\n", b"k" * 100 + b":\n" + b"  a: 1\n" * 8
     + b"  b: 3\n"),
    (b"one: 1\n" + b"  - x\n" * 20 + b"two: 2\n" + b"  - x\n" * 20,
     b"one: 1\n" + b"  - x\n" * 19 + b"  - y\n" + b"two: 2\n" + b"  - x\n" * 19 + b"  - y\n"),
    (b"", b"new: file\n"),
    (b"gone: file\n", b""),
]


def _git_hunks(tmp_path: Path, a: bytes, b: bytes, *args: str) -> bytes:
    (tmp_path / "a").write_bytes(a)
    (tmp_path / "b").write_bytes(b)
    out = subprocess.run(["git", "diff", "--no-index", *args, "a", "b"], cwd=tmp_path,
                         capture_output=True, stdin=subprocess.DEVNULL, timeout=60).stdout
    lines = out.splitlines(keepends=True)
    first = next((n for n, line in enumerate(lines) if line.lstrip(b"\x1b[36m").startswith(b"@@")),
                 len(lines))
    return b"".join(lines[first:])


@pytest.mark.parametrize(("n", "context"), [(n, c) for n in range(len(CASES)) for c in (3, 1)])
def test_hunks_are_what_git_diff_prints(tmp_path: Path, n: int, context: int) -> None:
    a, b = CASES[n]
    for color in (False, True):
        ours = b"".join(hunks(split_lines(a), split_lines(b), context=context, color=color))
        theirs = _git_hunks(tmp_path, a, b, f"-U{context}",
                            "--color=always" if color else "--no-color")
        assert ours == theirs, (color, ours.decode(), theirs.decode())


def _apply(a: list[bytes], patch: bytes) -> list[bytes]:
    """The new text from the old and our hunks (what `git apply` checks), for the property."""
    out: list[bytes] = []
    pos = 0
    lines = patch.split(b"\n")[:-1]
    i = 0
    while i < len(lines):
        head = lines[i].split(b" ")
        start = int(head[1][1:].split(b",")[0])
        count = int(head[1].split(b",")[1]) if b"," in head[1] else 1
        old_start = start - 1 if count else start
        out += a[pos:old_start]
        pos = old_start
        i += 1
        while i < len(lines) and not lines[i].startswith(b"@@"):
            line = lines[i]
            missing = i + 1 < len(lines) and lines[i + 1].startswith(b"\\")
            body = line[1:] + (b"" if missing else b"\n")
            if line[:1] in (b" ", b"-"):
                assert a[pos] == body
                pos += 1
            if line[:1] in (b" ", b"+"):
                out.append(body)
            i += 2 if missing else 1
    return out + a[pos:]


_LINES = st.lists(st.sampled_from([b"a: 1", b"  b: 2", b"", b"  - x", b"c:", b"\td"]),
                  max_size=25)


@given(_LINES, _LINES, st.booleans(), st.booleans(), st.integers(0, 4))
def test_hunks_turn_the_old_text_into_the_new(old: list[bytes], new: list[bytes], end_a: bool,
                                              end_b: bool, context: int) -> None:
    a = b"\n".join(old) + (b"\n" if old and end_a else b"")
    b = b"\n".join(new) + (b"\n" if new and end_b else b"")
    patch = b"".join(hunks(split_lines(a), split_lines(b), context=context))
    assert b"".join(_apply(split_lines(a), patch)) == b
    assert (patch == b"") == (a == b)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Commits of every shape git log prints: edits, a file without a final newline, a
    rename, a mode change, a deletion, a symlink, a binary file, a merge, an empty commit."""
    r = git_init(tmp_path_factory.mktemp("log") / "r")
    (r / "a.txt").write_text("one\ntwo\n")
    (r / "b.bin").write_bytes(bytes(range(256)))
    git(r, "add", "-A")
    git(r, "commit", "-qm", "first\n\nwith a body")
    (r / "a.txt").write_text("one\n2\nthree")
    (r / "sp ace.txt").write_text("x\n")
    (r / "link").symlink_to("a.txt")
    git(r, "add", "-A")
    git(r, "commit", "-qm", "second")
    git(r, "checkout", "-qb", "side")
    (r / "side.txt").write_text("s\n")
    git(r, "add", "-A")
    git(r, "commit", "-qm", "side")
    git(r, "checkout", "-q", "main")
    git(r, "mv", "a.txt", "moved.txt")
    (r / "b.bin").unlink()
    git(r, "add", "-A")
    git(r, "commit", "-qm", "third")
    git(r, "merge", "-q", "--no-edit", "side")
    git(r, "commit", "-q", "--allow-empty", "-m", "empty")
    (r / "sp ace.txt").chmod(0o755)
    (r / "link").unlink()
    (r / "link").write_text("now a file\n")
    git(r, "add", "-A")
    git(r, "commit", "-qm", "mode and type")
    return r


@pytest.mark.parametrize("args", [[], ["--oneline"], ["--color=always"], ["--first-parent"],
                                  ["--reverse", "--oneline", "--color=always"], ["-U1"],
                                  ["--pretty=fuller", "--decorate"]])
def test_the_log_stream_reads_back_into_git_log_p(repo: Path, args: list[str]) -> None:
    want = subprocess.run(["git", "log", "-p", *args], cwd=repo, capture_output=True,
                          check=True, stdin=subprocess.DEVNULL).stdout
    proc = subprocess.Popen(["git", "log", "-z", "--raw", "-p", *args], cwd=repo,
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    got = b"".join(ev.data for ev in read_log(proc.stdout)
                   if isinstance(ev, Text | PatchLine))
    assert proc.wait() == 0
    assert got == want


def test_cat_file_reads_drains_and_misses(repo: Path) -> None:
    big = git(repo, "rev-parse", "HEAD~4:b.bin").strip()
    small = git(repo, "rev-parse", "HEAD:moved.txt").strip()
    reader = CatFile(str(repo), limit=100)
    try:
        got = reader.read(big)
        assert got is not None and got.size == 256 and got.data is None  # over the limit
        got = reader.read(small)
        assert got is not None and got.data == b"one\n2\nthree"
        assert reader.read("0" * 40) is None
        assert reader.read(small) == got  # the conversation is still in step
    finally:
        reader.close()


@pytest.mark.parametrize("answer", [b"", b"garbage\n", b"%s blob 10\nshort" % (b"a" * 40),
                                    b"%s blob 3\nabcX" % (b"a" * 40), b"x" * 5000])
def test_cat_file_answers_out_of_protocol_are_typed_errors(answer: bytes) -> None:
    import io

    from secretops.git.catfile import GitProtocolError

    with pytest.raises(GitProtocolError):
        BatchReader(io.BytesIO(), io.BytesIO(answer)).read("a" * 40)
