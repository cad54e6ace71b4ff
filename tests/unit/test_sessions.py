"""InMemorySessionBackend, session IDs and the session cookie."""

from __future__ import annotations

import asyncio
import math

import pytest

from micropie.sessions import (
    InMemorySessionBackend,
    SessionBackend,
    new_session_id,
    session_cookie,
)
from tests.helpers.support import FakeClock


def test_load_of_unknown_id_returns_none() -> None:
    backend = InMemorySessionBackend()
    assert asyncio.run(backend.load("nobody")) is None


def test_save_then_load_returns_the_data() -> None:
    backend = InMemorySessionBackend()

    async def scenario() -> object:
        await backend.save("sid", {"user": "ada", "visits": 3})
        return await backend.load("sid")

    assert asyncio.run(scenario()) == {"user": "ada", "visits": 3}
    assert len(backend) == 1


def test_sessions_are_kept_apart_by_id() -> None:
    backend = InMemorySessionBackend()

    async def scenario() -> tuple[object, object]:
        await backend.save("one", {"n": 1})
        await backend.save("two", {"n": 2})
        return await backend.load("one"), await backend.load("two")

    assert asyncio.run(scenario()) == ({"n": 1}, {"n": 2})


def test_save_replaces_previous_data() -> None:
    backend = InMemorySessionBackend()

    async def scenario() -> object:
        await backend.save("sid", {"a": 1, "b": 2})
        await backend.save("sid", {"a": 5})
        return await backend.load("sid")

    assert asyncio.run(scenario()) == {"a": 5}


def test_load_returns_a_copy() -> None:
    backend = InMemorySessionBackend()

    async def scenario() -> object:
        await backend.save("sid", {"cart": ["apple"]})
        loaded = await backend.load("sid")
        assert loaded is not None
        loaded["cart"].append("pear")
        loaded["extra"] = True
        return await backend.load("sid")

    assert asyncio.run(scenario()) == {"cart": ["apple"]}


def test_save_stores_a_copy() -> None:
    backend = InMemorySessionBackend()
    data = {"cart": ["apple"]}

    async def scenario() -> object:
        await backend.save("sid", data)
        data["cart"].append("pear")
        data["late"] = 1
        return await backend.load("sid")

    assert asyncio.run(scenario()) == {"cart": ["apple"]}


def test_saving_empty_data_deletes_the_session() -> None:
    backend = InMemorySessionBackend()

    async def scenario() -> object:
        await backend.save("sid", {"user": "ada"})
        await backend.save("sid", {})
        return await backend.load("sid")

    assert asyncio.run(scenario()) is None
    assert len(backend) == 0


def test_saving_empty_data_for_unknown_id_stores_nothing() -> None:
    backend = InMemorySessionBackend()
    asyncio.run(backend.save("never-seen", {}))
    assert len(backend) == 0
    assert asyncio.run(backend.load("never-seen")) is None


def test_session_is_kept_until_max_age(clock: FakeClock) -> None:
    backend = InMemorySessionBackend(max_age=10)
    asyncio.run(backend.save("sid", {"user": "ada"}))
    clock.now += 9.999
    assert asyncio.run(backend.load("sid")) == {"user": "ada"}


def test_session_expires_after_max_age(clock: FakeClock) -> None:
    backend = InMemorySessionBackend(max_age=10)
    asyncio.run(backend.save("sid", {"user": "ada"}))
    clock.now += 10.5
    assert asyncio.run(backend.load("sid")) is None
    assert len(backend) == 0  # the expired entry is dropped when touched


def test_saving_again_extends_the_expiry(clock: FakeClock) -> None:
    backend = InMemorySessionBackend(max_age=10)
    asyncio.run(backend.save("sid", {"v": 1}))
    clock.now += 8
    asyncio.run(backend.save("sid", {"v": 2}))
    clock.now += 8  # 16 after the first save, 8 after the second
    assert asyncio.run(backend.load("sid")) == {"v": 2}
    clock.now += 3
    assert asyncio.run(backend.load("sid")) is None


@pytest.mark.parametrize("max_age", [0, -1])
def test_non_positive_max_age_is_refused(max_age: float) -> None:
    with pytest.raises(ValueError):
        InMemorySessionBackend(max_age=max_age)


def test_in_memory_backend_is_a_session_backend() -> None:
    assert isinstance(InMemorySessionBackend(), SessionBackend)
    with pytest.raises(TypeError):
        SessionBackend()  # type: ignore[abstract]


def test_new_session_id_has_at_least_128_bits_of_randomness() -> None:
    ids = [new_session_id() for _ in range(5000)]
    assert all(type(i) is str for i in ids)
    assert len(set(ids)) == len(ids)
    # Each character carries at most log2(alphabet) bits; measure the alphabet used.
    alphabet = set("".join(ids))
    shortest = min(len(i) for i in ids)
    assert shortest * math.log2(len(alphabet)) >= 128


def test_new_session_id_has_no_fixed_positions() -> None:
    ids = [new_session_id() for _ in range(2000)]
    length = min(len(i) for i in ids)
    # A counter or a timestamp prefix would leave some position nearly constant.
    for position in range(length):
        assert len({i[position] for i in ids}) > 8


def test_new_session_id_is_usable_as_a_cookie_value() -> None:
    session_id = new_session_id()
    cookie = session_cookie(session_id, secure=False)
    assert cookie.startswith(f"session_id={session_id};".encode())


def test_session_cookie_attributes() -> None:
    assert session_cookie("abc", secure=False) == b"session_id=abc; Path=/; HttpOnly; SameSite=Lax"
    secure = session_cookie("abc", secure=True).decode().split("; ")
    assert secure[0] == "session_id=abc"
    assert set(secure[1:]) == {"Path=/", "HttpOnly", "SameSite=Lax", "Secure"}


_TOKEN_CHARACTERS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def test_session_cookie_takes_exactly_the_token_characters() -> None:
    # Every character up to U+2FFF (and a few beyond), alone, first, in the middle and last.
    for code in [*range(0x3000), 0xFF21, 0x1D400, 0x10FFFF]:
        character = chr(code)
        for session_id in (character, character + "ab", "a" + character + "b", "ab" + character):
            if character in _TOKEN_CHARACTERS:
                assert session_cookie(session_id, secure=False).startswith(
                    f"session_id={session_id};".encode()
                )
            else:
                with pytest.raises(ValueError, match="non-empty token"):
                    session_cookie(session_id, secure=False)
    with pytest.raises(ValueError, match="non-empty token"):
        session_cookie("", secure=False)
    assert session_cookie("A-z_0.9~" * 20, secure=True).startswith(b"session_id=A-z_0.9~")
