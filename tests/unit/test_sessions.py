"""InMemorySessionBackend, session IDs and the session cookie."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from typing import Any

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


# A first lifetime for new sessions, and a bound on how many are kept.

DAY = 24 * 3600


def test_the_defaults_are_ten_minutes_for_new_sessions_and_100_000_sessions() -> None:
    backend = InMemorySessionBackend()
    assert (backend.max_age, backend.new_session_max_age) == (14 * DAY, 600)
    assert backend.max_sessions == 100_000


def test_a_new_session_whose_client_never_comes_back_expires_after_ten_minutes(
    clock: FakeClock,
) -> None:
    backend = InMemorySessionBackend()
    asyncio.run(backend.create("sid", {"name": "guest"}))
    clock.now += 601
    assert asyncio.run(backend.load("sid")) is None
    assert len(backend) == 0


def test_a_returning_client_gives_its_session_the_full_lifetime_from_its_save(
    clock: FakeClock,
) -> None:
    backend = InMemorySessionBackend()
    asyncio.run(backend.create("sid", {"name": "guest"}))
    clock.now += 300
    assert asyncio.run(backend.load("sid")) == {"name": "guest"}  # back with the cookie
    clock.now += 14 * DAY - 301  # a second before 14 days after the save
    assert asyncio.run(backend.load("sid")) == {"name": "guest"}
    clock.now += 2
    assert asyncio.run(backend.load("sid")) is None


def test_replacing_a_new_session_keeps_it_new(clock: FakeClock) -> None:
    backend = InMemorySessionBackend()

    async def scenario() -> bool:
        await backend.create("sid", {"n": 1})
        return await backend.replace("sid", {"n": 2})

    assert asyncio.run(scenario()) is True
    clock.now += 601
    assert asyncio.run(backend.load("sid")) is None


def test_a_first_lifetime_longer_than_max_age_is_max_age(clock: FakeClock) -> None:
    backend = InMemorySessionBackend(max_age=60, new_session_max_age=600)
    assert backend.new_session_max_age == 60
    asyncio.run(backend.create("sid", {"n": 1}))
    clock.now += 59
    assert asyncio.run(backend.load("sid")) == {"n": 1}
    clock.now += 2
    assert asyncio.run(backend.load("sid")) is None


def test_replace_stores_only_under_an_id_still_stored(clock: FakeClock) -> None:
    backend = InMemorySessionBackend(max_age=10)

    async def scenario() -> list[object]:
        seen: list[object] = [await backend.replace("never", {"n": 1})]
        await backend.save("gone", {"n": 1})
        await backend.save("gone", {})  # a logout
        seen.append(await backend.replace("gone", {"n": 2}))
        await backend.save("kept", {"n": 1})
        seen.append(await backend.replace("kept", {"n": 2}))
        seen += [await backend.load(name) for name in ("never", "gone", "kept")]
        await backend.save("old", {"n": 1})
        clock.now += 11
        seen.append(await backend.replace("old", {"n": 2}))  # expired: gone as well
        return seen

    assert asyncio.run(scenario()) == [False, False, True, None, None, {"n": 2}, False]
    assert len(backend) == 1  # "kept", expired too by now, until it is touched


def test_storing_more_than_max_sessions_forgets_new_sessions_first() -> None:
    backend = InMemorySessionBackend(max_sessions=3)

    async def scenario() -> list[object]:
        await backend.create("kept", {"user": "ada"})
        await backend.load("kept")  # its client came back
        for n in range(10):
            await backend.create(f"new-{n}", {"n": n})
            assert len(backend) <= 3
        return [await backend.load(name) for name in ("kept", "new-7", "new-8", "new-9")]

    assert asyncio.run(scenario()) == [{"user": "ada"}, None, {"n": 8}, {"n": 9}]


def test_without_new_sessions_the_one_saved_longest_ago_is_forgotten() -> None:
    backend = InMemorySessionBackend(max_sessions=2)

    async def scenario() -> list[object]:
        for name in ("first", "second"):
            await backend.save(name, {"name": name})
        await backend.save("first", {"name": "first", "again": True})  # now the latest
        await backend.save("third", {"name": "third"})
        return [await backend.load(name) for name in ("first", "second", "third")]

    assert asyncio.run(scenario()) == [
        {"name": "first", "again": True},
        None,
        {"name": "third"},
    ]


def test_an_expired_session_makes_room_before_a_live_one(clock: FakeClock) -> None:
    backend = InMemorySessionBackend(max_age=10, max_sessions=2, cleanup_interval=3600)

    async def scenario() -> list[object]:
        await backend.save("stale", {"n": 0})
        clock.now += 11
        await backend.create("new-1", {"n": 1})
        await backend.create("new-2", {"n": 2})  # the stale one goes, not new-1
        return [await backend.load(name) for name in ("new-1", "new-2")]

    assert asyncio.run(scenario()) == [{"n": 1}, {"n": 2}]


def test_a_full_store_is_logged_at_most_once_a_minute(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    backend = InMemorySessionBackend(max_sessions=2)

    async def flood(count: int) -> None:
        for _ in range(count):
            await backend.create(new_session_id(), {"n": 1})

    with caplog.at_level(logging.WARNING, logger="micropie"):
        asyncio.run(flood(50))
        clock.now += 59
        asyncio.run(flood(50))
        clock.now += 2
        asyncio.run(flood(50))
    warnings = [record.getMessage() for record in caplog.records]
    assert (
        warnings
        == [
            "the in-memory session store holds max_sessions=2 sessions: "
            "the oldest are forgotten to make room, new ones first"
        ]
        * 2
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_sessions": 0}, "max_sessions must be a positive int, got 0"),
        ({"max_sessions": 1.5}, "max_sessions must be a positive int, got 1.5"),
        ({"new_session_max_age": 0}, "new_session_max_age must be positive"),
    ],
)
def test_bad_bounds_are_refused_saying_which(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        InMemorySessionBackend(**options)  # type: ignore[arg-type]


class LoggingBackend(InMemorySessionBackend):
    """A subclass that overrides save(), as one may to watch or copy what is saved."""

    def __init__(self) -> None:
        super().__init__()
        self.saved: list[str] = []

    async def save(
        self, session_id: str, data: dict[str, Any], timeout: float | None = None
    ) -> None:
        self.saved.append(session_id)
        await super().save(session_id, data, timeout)


def test_a_subclass_that_overrides_save_sees_every_session_saved() -> None:
    backend = LoggingBackend()

    async def scenario() -> tuple[bool, bool]:
        await backend.create("new", {"n": 1})
        return await backend.replace("new", {"n": 2}), await backend.replace("none", {"n": 1})

    assert asyncio.run(scenario()) == (True, False)
    assert backend.saved == ["new", "new"]
