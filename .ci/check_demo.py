#!/usr/bin/env python3
"""Check a demo page as a newcomer would look at it: every application's section, no error.

    python3 .ci/check_demo.py photonpipe-demo/index.html

Exit 0 when the page exists, has a section (an <h2>) for each of the four applications
(light curves, echelle, sky, stellar), and shows no failure: no section marked failed, no
traceback, no error line of the command. Standard library only: it runs before anything is
installed. Prints one line per problem otherwise and exits 1.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path

APPLICATIONS = ("light curves", "echelle", "sky", "stellar")
FAILURE_MARKERS = ("Traceback", "internal error", "photonpipe: error", "(failed)")


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.titles: list[str] = []
        self.failed: list[str] = []
        self._in_h2 = False
        self._h2_failed = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "h2":
            self._in_h2, self._h2_failed = True, "failed" in classes
            self.titles.append("")
        elif "failed" in classes:
            self.failed.append(f"<{tag} class=failed> in section {self.titles[-1:]}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2" and self._in_h2:
            self._in_h2 = False
            if self._h2_failed:
                self.failed.append(f"section {self.titles[-1]!r} is marked failed")

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self.titles[-1] += data


def problems(index: Path) -> list[str]:
    """What is wrong with the demo page ``index`` (empty: nothing)."""
    if not index.is_file():
        return [f"{index}: no such file"]
    text = index.read_text(encoding="utf-8")
    parser = _Sections()
    parser.feed(text)
    found = []
    titles = [t.strip().lower() for t in parser.titles]
    for application in APPLICATIONS:
        if not any(t.startswith(application) for t in titles):
            found.append(f"{index}: no section for {application} (sections: {parser.titles})")
    found += [f"{index}: {failure}" for failure in parser.failed]
    found += [f"{index}: contains {marker!r}" for marker in FAILURE_MARKERS if marker in text]
    return found


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    found = problems(Path(sys.argv[1]))
    for line in found:
        print(f"check_demo: {line}", file=sys.stderr)
    if found:
        sys.exit(1)
    print(f"check_demo: {sys.argv[1]}: sections for {', '.join(APPLICATIONS)}, no error")


if __name__ == "__main__":
    main()
