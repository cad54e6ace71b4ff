"""One interpreter session of a reader following a page (run by ``tests/helpers/reader.py``).

Run as ``python -I reader_session.py STEPS.json`` in the reader's directory.
It saves the page's files and runs its ``>>>`` examples in order, in one
namespace, as an interactive ``python`` started in that directory would. It
stops at the first failing block, prints doctest's report and exits 1; on
success its last line is a JSON summary. It imports nothing from the
repository, which must not be importable from here.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import os
import sys
from pathlib import Path


def _fail(message: str) -> None:
    print(message)
    raise SystemExit(1)


def main(steps_file: str) -> None:
    payload = json.loads(Path(steps_file).read_text(encoding="utf-8"))
    root = Path(payload["root"])
    sys.path.insert(0, os.getcwd())  # what `python` started here puts first
    if importlib.util.find_spec("examples") is not None or str(root) in sys.path:
        _fail(f"the repository ({root}) is importable: a reader does not have it")

    namespace: dict[str, object] = {"__name__": "__main__", "__builtins__": __builtins__}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    parser = doctest.DocTestParser()
    examples = 0
    files: list[str] = []
    for step in payload["steps"]:
        if step["kind"] == "SaveFile":
            path = Path(step["name"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(step["text"], encoding="utf-8")
            files.append(step["name"])
            continue
        test = parser.get_doctest(
            step["text"], namespace, step["where"], step["source"], step["line"]
        )
        report: list[str] = []
        result = runner.run(test, out=report.append, clear_globs=False)
        namespace = test.globs  # DocTest runs on a copy of the namespace it was given
        examples += result.attempted
        if result.failed:
            _fail(f"examples at {step['where']} failed:\n" + "".join(report))
    print(json.dumps({"examples": examples, "files": files}))


if __name__ == "__main__":
    main(sys.argv[1])
