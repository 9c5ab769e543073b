#!/usr/bin/env python3
"""Print the hunks a selection file names, cut out of a patch in an unpacked Debian source.

    qemu-select-hunks.py <selection.hunks> <debian source dir>  >  change.diff

The selection (see scripts/qemu-reverts/*.hunks) names the patch (`patch<TAB><path>`) and one
hunk per line (`<file><TAB><text>`: the hunk of <file> with an added or removed line that
contains <text>). Each line must match exactly one hunk; the output is a unified diff of just
those hunks, in patch order, ready for `patch -R -p1`.
"""
import re
import sys

HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@")


def parse(patch_text):
    """[(file, header_lines, [hunk_lines...])] for each file in a git-style diff."""
    files = []
    current = None
    hunk = None
    for line in patch_text.splitlines(keepends=True):
        if line.startswith("diff --git "):
            current = {"name": line.split(" b/", 1)[1].strip(), "header": [line], "hunks": []}
            files.append(current)
            hunk = None
        elif current is None:
            continue
        elif HUNK.match(line):
            hunk = [line]
            current["hunks"].append(hunk)
        elif hunk is None:
            current["header"].append(line)
        else:
            hunk.append(line)
    return files


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    selection_path, source = sys.argv[1], sys.argv[2]
    patch_path = None
    wanted = []
    with open(selection_path, encoding="utf-8") as selection:
        for number, line in enumerate(selection, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            key, _, text = line.partition("\t")
            if not text:
                sys.exit(f"{selection_path}:{number}: expected <file><TAB><text>")
            if key == "patch":
                patch_path = text
            else:
                wanted.append((number, key, text))
    if patch_path is None:
        sys.exit(f"{selection_path}: no `patch` line")
    with open(f"{source}/{patch_path}", encoding="utf-8", errors="surrogateescape") as patch:
        files = parse(patch.read())
    chosen = {}
    for number, name, text in wanted:
        matches = [
            (fi, hi)
            for fi, f in enumerate(files)
            if f["name"] == name
            for hi, h in enumerate(f["hunks"])
            if any(l[:1] in "+-" and text in l[1:] for l in h[1:])
        ]
        if len(matches) != 1:
            sys.exit(
                f"{selection_path}:{number}: `{text}` matches {len(matches)} hunks of {name} "
                f"in {patch_path} (need exactly 1)"
            )
        chosen.setdefault(matches[0], number)
    out = sys.stdout
    last_file = None
    for fi, hi in sorted(chosen):
        if fi != last_file:
            out.writelines(files[fi]["header"])
            last_file = fi
        out.writelines(files[fi]["hunks"][hi])


if __name__ == "__main__":
    main()
