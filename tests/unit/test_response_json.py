"""A handler's dict or list is sent as ``json.dumps(value, separators=(",", ":"))`` would
write it, byte for byte, and fails as it would fail: MicroPie builds json's encoder itself
(cheaper than json.dumps), and falls back on json.dumps where json has no C accelerator."""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from micropie import responses
from micropie.responses import to_response


@pytest.fixture(params=["accelerated", "pure-python"])
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Both ways the body is encoded: with json's C encoder, and without one."""
    if request.param == "pure-python":
        monkeypatch.setattr(responses, "_make_encoder", None)
    else:
        assert responses._make_encoder is not None  # CPython has the accelerator
    yield request.param


def expected(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def body_of(value: Any) -> bytes:
    response = to_response(value)
    assert response.headers == [(b"content-type", b"application/json")]
    assert response.body is not None
    return response.body


class Point(dict[str, int]):
    """A dict subclass, as handlers return (OrderedDict, a TypedDict's dict)."""


_SHARED = {"shared": [1, 2]}

CASES: list[Any] = [
    {},
    [],
    {"message": "Hello, World!"},
    {"é": "naïve café", "emoji": "\U0001f967", "cjk": "漢字", "lone surrogate": "\ud800"},
    {"quote": '"', "backslash": "\\", "controls": "\x00\x1f\n\t\r\x7f", "slash": "/"},
    [0, -1, 2**70, -(2**70), True, False, None],
    [0.0, -0.0, 1.5, 1e300, 1e-300, 0.1 + 0.2, 123456789.123456789],
    [math.nan, math.inf, -math.inf],
    {3: "int key", 2.5: "float key", True: "bool key", None: "None key", "s": "str key"},
    {"nested": {"deeper": [{"deepest": [[], {}, [[[1]]]]}]}},
    [_SHARED, _SHARED, {"again": _SHARED}],  # the same object twice is no cycle
    OrderedDict([("z", 1), ("a", 2)]),
    Point(x=1, y=2),
    [(1, 2), ("tuple", ["inside"])],
]


@pytest.mark.parametrize("value", CASES, ids=[repr(case)[:40] for case in CASES])
def test_the_body_is_what_json_dumps_writes(encoder: str, value: Any) -> None:
    assert body_of(value) == expected(value)


def _failure(call: Any, value: Any) -> tuple[type[BaseException], str]:
    with pytest.raises(Exception) as caught:
        call(value)
    return caught.type, str(caught.value)


def _cycle_in_list() -> list[Any]:
    looped: list[Any] = [1]
    looped.append(looped)
    return looped


def _cycle_in_dict() -> dict[str, Any]:
    looped: dict[str, Any] = {"a": {}}
    looped["a"]["back"] = looped
    return looped


FAILURES: list[Any] = [
    {"a set": {1, 2}},
    [object()],
    {"bytes": b"raw"},
    {("tuple", "key"): 1},
    _cycle_in_list(),
    _cycle_in_dict(),
]


@pytest.mark.parametrize(
    "value", FAILURES, ids=[type(v).__name__ + str(i) for i, v in enumerate(FAILURES)]
)
def test_what_json_dumps_refuses_fails_with_the_same_error(encoder: str, value: Any) -> None:
    mine = _failure(to_response, value)
    theirs = _failure(lambda v: json.dumps(v, separators=(",", ":")), value)
    assert mine == theirs
    assert mine[0] in (TypeError, ValueError)


def test_circular_reference_and_unencodable_value_errors_say_what_json_says(encoder: str) -> None:
    assert _failure(to_response, _cycle_in_list()) == (ValueError, "Circular reference detected")
    assert _failure(to_response, [{1, 2}]) == (
        TypeError,
        "Object of type set is not JSON serializable",
    )


def test_a_failed_encoding_leaves_nothing_behind_for_the_next(encoder: str) -> None:
    # The encoder marks the containers it is inside, to find cycles; a failure
    # midway must not leave one marked, or encoding it again would be a "cycle".
    shared: dict[str, Any] = {"k": [1], "bad": object()}
    with pytest.raises(TypeError):
        to_response([shared])
    del shared["bad"]
    assert body_of([shared, {"again": shared}]) == b'[{"k":[1]},{"again":{"k":[1]}}]'


def test_deep_nesting_fails_as_json_dumps_does(encoder: str) -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(RecursionError):
        json.dumps(deep, separators=(",", ":"))
    with pytest.raises(RecursionError):
        to_response(deep)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF))
)
_keys = st.text() | st.integers() | st.floats() | st.booleans() | st.none()
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(st.lists(_values, max_size=4) | st.dictionaries(_keys, _values, max_size=4))
def test_any_json_value_is_written_as_json_dumps_writes_it(value: Any) -> None:
    assert body_of(value) == expected(value)
