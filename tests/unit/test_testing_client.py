"""What the test client does as a browser or an HTTP client would: JSON
bodies, repeated headers, multipart names that cannot break the form, and
a cookie jar that honours Path, Max-Age and Expires."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email.utils import formatdate

import pytest

import micropie.cookiejar
from micropie import App
from micropie.testing import TestClient


class Echoes(App):
    def data(self) -> dict[str, object]:
        return {
            "tags": self.request.headers.getlist("x-tag"),
            "joined": self.request.headers["x-tag"],
        }

    def upload(self) -> dict[str, object]:
        request = self.request
        return {
            "fields": sorted(request.body_params),
            "files": {name: [f.filename for f in files] for name, files in request.files.items()},
            "types": sorted(f.content_type for files in request.files.values() for f in files),
        }

    def set(
        self, name: str, attributes: str = "; Path=/"
    ) -> tuple[int, str, list[tuple[str, str]]]:
        return 200, "set", [("set-cookie", f"{name}=1{attributes}")]

    def admin(self, *rest: str) -> str:
        return self.request.headers.get("cookie", "")

    def index(self) -> str:
        return self.request.headers.get("cookie", "")


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(Echoes())


@pytest.fixture
def jar_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    now = [1_700_000_000.0]
    monkeypatch.setattr(micropie.cookiejar.time, "time", lambda: now[0])
    yield now


def test_a_response_parses_its_json_body(client: TestClient) -> None:
    assert client.get("/data", headers={"x-tag": "a"}).json() == {"tags": ["a"], "joined": "a"}
    with pytest.raises(ValueError):
        client.get("/set/x").json()


def test_a_header_can_be_sent_more_than_once(client: TestClient) -> None:
    response = client.get("/data", headers=[("X-Tag", "a"), ("x-tag", "b")])
    assert response.json() == {"tags": ["a", "b"], "joined": "a, b"}


def test_multipart_names_cannot_add_headers_or_parts(client: TestClient) -> None:
    hostile = 'evil"\r\nContent-Type: text/html\r\n\r\nx'
    response = client.post(
        "/upload",
        form={hostile: "value", "plain": "p"},
        files={"doc": (hostile, b"content", "text/plain")},
    )
    assert response.status_code == 200
    body = response.json()
    # One field per name given, the names escaped as browsers do, no header injected.
    assert body["fields"] == sorted(["evil%22%0D%0AContent-Type: text/html%0D%0A%0D%0Ax", "plain"])
    assert body["files"] == {"doc": ["evil%22%0D%0AContent-Type: text/html%0D%0A%0D%0Ax"]}
    assert body["types"] == ["text/plain"]


def test_a_cookie_goes_only_to_its_path_and_below(client: TestClient) -> None:
    client.get("/set/site")
    client.get("/set/area", query_string="") if False else client.get(
        "/set/area?attributes=; Path=/admin"
    )
    assert client.get("/").text == "site=1"
    assert client.get("/admin").text == "site=1; area=1"
    assert client.get("/admin/users").text == "site=1; area=1"
    assert client.get("/administrator").status_code == 404  # not a path below /admin
    assert "area" not in client.cookies.header_for("/administrator")


def test_max_age_and_expires_end_a_cookie(client: TestClient, jar_clock: list[float]) -> None:
    client.get("/set/short?attributes=; Path=/; Max-Age=60")
    client.get(
        "/set/dated?attributes=; Path=/; Expires=" + formatdate(jar_clock[0] + 120, usegmt=True)
    )
    client.get(
        "/set/both?attributes=; Path=/; Max-Age=10; Expires="
        + formatdate(jar_clock[0] + 999, usegmt=True)
    )
    assert client.get("/").text == "short=1; dated=1; both=1"
    jar_clock[0] += 30  # Max-Age wins over Expires
    assert client.get("/").text == "short=1; dated=1"
    jar_clock[0] += 60
    assert client.get("/").text == "dated=1"
    jar_clock[0] += 60
    assert client.get("/").text == ""
    assert dict(client.cookies) == {}


def test_a_cookie_in_the_past_or_with_max_age_zero_is_deleted(
    client: TestClient, jar_clock: list[float]
) -> None:
    client.get("/set/a")
    client.get("/set/b")
    client.get("/set/a?attributes=; Path=/; Max-Age=0")
    client.get("/set/b?attributes=; Path=/; Expires=" + formatdate(jar_clock[0] - 1, usegmt=True))
    assert dict(client.cookies) == {}


def test_the_jar_is_a_mapping_a_test_can_fill(client: TestClient) -> None:
    client.cookies["session_id"] = "abc"
    assert client.get("/admin/x").text == "session_id=abc"
    del client.cookies["session_id"]
    assert client.get("/").text == ""


def test_a_cookie_without_a_path_belongs_to_the_directory_that_set_it(
    client: TestClient,
) -> None:
    client.get("/set/scoped?attributes=")  # no Path, set by /set/scoped: path /set
    assert client.cookies.header_for("/set/other") == "scoped=1"
    assert client.cookies.header_for("/") == ""


def test_odd_but_readable_attributes_are_read_as_browsers_read_them(
    client: TestClient, jar_clock: list[float]
) -> None:
    client.cookies.set_from_header("a=1; Max-Age = 0")
    client.cookies.set_from_header("b=1; Max-Age=" + "9" * 400)  # too far to count: kept
    client.cookies.set_from_header("c=1; Expires=" + formatdate(jar_clock[0] - 60))  # -0000: UTC
    client.cookies.set_from_header("d=1; Expires=someday")  # unreadable: ignored
    assert dict(client.cookies) == {"b": "1", "d": "1"}


def test_the_cookies_can_be_replaced_by_any_mapping(client: TestClient) -> None:
    client.cookies = {"user": "ann"}  # type: ignore[assignment]
    assert client.get("/").text == "user=ann"
    assert client.cookies.copy() == {"user": "ann"}
