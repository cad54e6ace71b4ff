"""What a server's output may not contain, checked once it is known to be complete.

A line that is missing proves nothing until the server has had every chance
to print it. So the checks here read output that is final: the server was
stopped (:meth:`RunningServer.stop <tests.helpers.servers.RunningServer.stop>`
returns all it printed), or a later line shows that what the test did is over.
Never a sleep, then a look.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from tests.helpers.servers import RunningServer

#: Words that only problems put in a server's output.
ERROR_WORDS = ("Traceback", "ERROR")


def problem_lines(output: str, words: Iterable[str] = ERROR_WORDS) -> list[str]:
    """The lines of *output* that hold any of *words*."""
    words = tuple(words)
    return [line for line in output.splitlines() if any(word in line for word in words)]


def assert_no_errors(output: str, words: Iterable[str] = ERROR_WORDS) -> None:
    """Fail, showing the output's end, if any line of *output* holds one of *words*."""
    problems = problem_lines(output, words)
    assert problems == [], f"{problems}\n--- the output ends with:\n{output[-5000:]}"


@contextlib.contextmanager
def quiet(
    server_context: contextlib.AbstractContextManager[RunningServer],
    words: Iterable[str] = ERROR_WORDS,
) -> Iterator[RunningServer]:
    """Serve with *server_context*; when the block ends, stop the server and fail if
    anything it printed in its whole life holds one of *words*.

    For a server that the tests of a module share, none of which may cause an
    error: the check runs once the last of them is done (a failure shows as an
    error at the teardown of that test), on output that is then complete.
    """
    with server_context as server:
        yield server
        assert_no_errors(server.stop(), words)
