#!/usr/bin/env bash
# Checks the relative links of every Markdown file of the project (README.md, CONTRIBUTING.md,
# docs/, benches/, ...; not the third-party sources in vendor/): each must name a file or folder
# that exists in the repository, and a `#fragment` must name a heading (or an explicit anchor) of
# the Markdown file it points at.
# A link that leaves the repository's tree (through `..`, or an absolute file path) is an error,
# since a user who clones the project has nothing outside it. Links with a scheme (https:, mailto:)
# are not fetched.
#
#   scripts/check-links.sh            # exit 0 when every link resolves, 1 with one line per bad link
#   scripts/check-links.sh FILE...    # only these Markdown files
#
# bash and python3 (standard library only).
set -euo pipefail
cd "$(dirname "$0")/.."

if (($#)); then
  files=("$@")
else
  # vendor/ holds third-party sources as published; their links are not ours to keep.
  mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.md' ':!vendor/' | sort -u)
fi

python3 - "${files[@]}" <<'PY'
import os
import re
import sys
import unicodedata
from urllib.parse import unquote

ROOT = os.path.realpath(os.getcwd())
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
ANCHOR = re.compile(r"""<a\s[^>]*(?:name|id)\s*=\s*["']([^"']+)["']""", re.I)
# [text](dest "title") and ![alt](dest); dest may be in <...>. Nested brackets one level deep.
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REFDEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
CODESPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def slug(text):
    """GitHub's heading anchor: rendered text, lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "-_ " or cat[0] in "LNM":
            out.append("-" if ch == " " else ch)
    return "".join(out)


def lines_outside_code(text):
    """(line number, line) for every line outside fenced code blocks."""
    fence = None
    for n, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
                continue
            yield n, line
        elif m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):].strip():
            fence = None


_anchors = {}


def anchors(path):
    if path not in _anchors:
        found, seen = set(), {}
        with open(path, encoding="utf-8") as f:
            lines = list(lines_outside_code(f.read()))
        prev = None
        for n, line in lines:
            for a in ANCHOR.findall(line):
                found.add(a)
            title = None
            m = HEADING.match(line)
            if m:
                title = m.group(2)
            elif prev is not None and prev[0] == n - 1 and prev[1].strip() and SETEXT.match(line) and not HEADING.match(prev[1]):
                title = prev[1]
            if title is not None:
                base = slug(title)
                k = seen.get(base, 0)
                seen[base] = k + 1
                found.add(base if k == 0 else f"{base}-{k}")
            prev = (n, line)
        _anchors[path] = found
    return _anchors[path]


def links(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for n, line in lines_outside_code(text):
        m = REFDEF.match(line)
        if m:
            yield n, m.group(1)
        for m in INLINE.finditer(CODESPAN.sub(lambda s: " " * len(s.group(0)), line)):
            yield n, m.group(1)


def inside(path):
    return path == ROOT or path.startswith(ROOT + os.sep)


errors = []
for md in sys.argv[1:]:
    md_abs = os.path.realpath(md)
    if not os.path.isfile(md_abs):
        errors.append(f"{md}: no such file")
        continue
    for n, dest in links(md):
        where = f"{md}:{n}: ({dest})"
        dest = dest[1:-1] if dest.startswith("<") and dest.endswith(">") else dest
        if not dest or SCHEME.match(dest) or dest.startswith("//"):
            continue
        target, _, fragment = dest.partition("#")
        target = unquote(target.split("?", 1)[0])
        if target.startswith("/"):
            errors.append(f"{where} an absolute path: link relative to this file instead")
            continue
        if target:
            resolved = os.path.normpath(os.path.join(os.path.dirname(md_abs), target))
            if not inside(resolved) or not inside(os.path.realpath(resolved)):
                errors.append(f"{where} leaves the repository")
                continue
            if not os.path.exists(resolved):
                errors.append(f"{where} no such file in the repository")
                continue
        else:
            resolved = md_abs
        if fragment and os.path.isfile(resolved) and resolved.endswith(".md"):
            if unquote(fragment).lower() not in {a.lower() for a in anchors(resolved)}:
                errors.append(f"{where} no heading or anchor #{fragment} in {os.path.relpath(resolved, ROOT)}")

for e in errors:
    print(e)
if errors:
    print(f"check-links: {len(errors)} broken link(s)")
    sys.exit(1)
print(f"check-links: {len(sys.argv) - 1} Markdown file(s), every relative link resolves")
PY
