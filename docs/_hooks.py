"""mkdocs hook: the site's pages include the repository's README files as they are.

A page line `<!-- include: PATH -->` (PATH from the repository root) is replaced by that file's
text. The READMEs link for readers on a code host (`../../docs/benchmarks.md`,
`packages/stseg-data`), so each relative link is resolved against the included file and mapped to
the site page that holds the same text; a link to a file the site does not have becomes plain text,
so `mkdocs build --strict` sees no broken link.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

ROOT_MARK = "mkdocs.yml"
INCLUDE = re.compile(r"^<!-- include: (\S+) -->$", re.M)
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")
PACKAGES = ("stseg-data", "stseg-models", "stseg-train", "ssen-instance", "stseg-viz")


def _site_page(repo_path: str) -> str | None:
    """The docs page (relative to docs/) that shows a repository file, if the site has one."""
    path = repo_path.rstrip("/")
    if path.startswith("docs/"):
        return path[len("docs/") :]
    if path in ("README.md", ""):
        return "index.md"
    if path == "CHANGELOG.md":
        return "changelog.md"
    for name in PACKAGES:
        if path in (f"packages/{name}", f"packages/{name}/README.md"):
            return f"packages/{name}.md"
    return None


def _rewrite_links(text: str, source: str, page_uri: str) -> str:
    base = posixpath.dirname(source)
    page_dir = posixpath.dirname(page_uri)

    def replace(match: re.Match[str]) -> str:
        label, target = match.groups()
        if re.match(r"^[a-z]+:|^#|^/", target):
            return match.group(0)  # a URL, an anchor of the same page, or an absolute path
        file_part, _, anchor = target.partition("#")
        page = _site_page(posixpath.normpath(posixpath.join(base, file_part)))
        if page is None:
            return label
        link = posixpath.relpath(page, page_dir or ".")
        return f"[{label}]({link}{'#' + anchor if anchor else ''})"

    return LINK.sub(replace, text)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    root = posixpath.dirname(config["config_file_path"])

    def include(match: re.Match[str]) -> str:
        source = match.group(1)
        with open(posixpath.join(root, source), encoding="utf-8") as handle:
            return _rewrite_links(handle.read(), source, page.file.src_uri)

    return INCLUDE.sub(include, markdown)
