"""The files of docs/source/howto/deployment.rst, read without starting a server.

``examples/deploy/app.py`` reads its settings from the environment; the unit
file and the Dockerfile that the page shows are parsed here, and their
values checked against what the page says of them (the parsers:
tests/helpers/deployment.py). tests/e2e/test_deployment_e2e.py runs their
commands for real.
"""

from __future__ import annotations

import importlib.metadata
import shlex
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

from examples.deploy.app import (
    DEFAULT_MAX_BODY_SIZE,
    ConfigError,
    Settings,
    load_settings,
    make_app,
)
from micropie import App
from micropie.testing import TestClient, WebSocketRejected
from tests.helpers.deployment import (
    DOCKERFILE,
    UNIT_FILE,
    docker_cmd,
    docker_values,
    option_value,
    parse_dockerfile,
    parse_unit,
    unit_environment,
    unit_value,
)
from tests.helpers.support import REPO_ROOT, captions_of_file, require_module

DEPLOY = REPO_ROOT / "examples" / "deploy"
PAGE = REPO_ROOT / "docs" / "source" / "howto" / "deployment.rst"
#: How long ``docker stop`` waits before SIGKILL, unless told otherwise.
DOCKER_STOP_TIMEOUT = 10


# The settings of examples/deploy/app.py.


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, Settings()),
        ({"MICROPIE_ALLOWED_ORIGINS": " "}, Settings()),
        ({"MICROPIE_ALLOWED_HOSTS": ""}, Settings()),
        ({"MICROPIE_ALLOWED_HOSTS": " "}, Settings()),
        (
            {"MICROPIE_ALLOWED_HOSTS": "www.example.com, *.example.com,localhost:8000,[::1],"},
            Settings(allowed_hosts=("www.example.com", "*.example.com", "localhost:8000", "[::1]")),
        ),
        ({"MICROPIE_ALLOWED_HOSTS": "*"}, Settings(allowed_hosts=("*",))),
        (
            {"MICROPIE_ALLOWED_ORIGINS": "https://a.example, http://b.example:8080/ ,*,"},
            Settings(allowed_origins=("https://a.example", "http://b.example:8080/", "*")),
        ),
        (
            {"MICROPIE_REDIS_URL": "redis://cache:6379/0"},
            Settings(redis_url="redis://cache:6379/0"),
        ),
        (
            {"MICROPIE_REDIS_URL": "rediss://:pw@cache/1"},
            Settings(redis_url="rediss://:pw@cache/1"),
        ),
        (
            {"MICROPIE_REDIS_URL": "unix:///run/redis.sock"},
            Settings(redis_url="unix:///run/redis.sock"),
        ),
        ({"MICROPIE_MAX_BODY_SIZE": " 2048 "}, Settings(max_body_size=2048)),
        ({"MICROPIE_MAX_BODY_SIZE": ""}, Settings(max_body_size=DEFAULT_MAX_BODY_SIZE)),
    ],
)
def test_settings_that_the_application_takes(environ: dict[str, str], expected: Settings) -> None:
    assert load_settings(environ) == expected


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MICROPIE_ALLOWED_HOSTS", "https://www.example.com", "is a URL; write its host alone"),
        ("MICROPIE_ALLOWED_HOSTS", "www.example.com,.example.com", "'.example.com' names no"),
        ("MICROPIE_ALLOWED_HOSTS", "www.example.com localhost", "is not a host name"),
        ("MICROPIE_ALLOWED_HOSTS", "::1", "write it in brackets"),
        ("MICROPIE_ALLOWED_HOSTS", "example.com:port", "is not a host name"),
        ("MICROPIE_ALLOWED_HOSTS", "www.*.example.com", "has a '*' where none can be"),
        ("MICROPIE_ALLOWED_HOSTS", ",", "allowed_hosts is empty, which would refuse every"),
        ("MICROPIE_ALLOWED_ORIGINS", "example.com", "'example.com' is not an origin"),
        ("MICROPIE_ALLOWED_ORIGINS", "https://a.example/app", "'https://a.example/app' is not"),
        ("MICROPIE_ALLOWED_ORIGINS", "https://a.example?x=1", "is not an origin"),
        ("MICROPIE_ALLOWED_ORIGINS", "https://a.example:http", "is not an origin"),
        ("MICROPIE_ALLOWED_ORIGINS", "https://me@a.example", "is not an origin"),
        ("MICROPIE_ALLOWED_ORIGINS", "ftp://a.example", "is not an origin"),
        ("MICROPIE_ALLOWED_ORIGINS", "https://", "is not an origin"),
        ("MICROPIE_REDIS_URL", "cache:6379", "unix:// (it has no scheme"),
        ("MICROPIE_REDIS_URL", "127.0.0.1:6379", "unix:// (it has no scheme"),
        ("MICROPIE_REDIS_URL", "http://:s3cret@cache", "or unix://, not http://"),
        ("MICROPIE_REDIS_URL", "redis://:s3cret@cache:port/0", "has a port that is not a number"),
        ("MICROPIE_REDIS_URL", "redis:///0", "names no host"),
        ("MICROPIE_REDIS_URL", "unix://", "names no socket"),
        ("MICROPIE_MAX_BODY_SIZE", "0", "'0' is not a positive whole number of bytes"),
        ("MICROPIE_MAX_BODY_SIZE", "-5", "'-5' is not a positive"),
        ("MICROPIE_MAX_BODY_SIZE", "1e6", "'1e6' is not a positive"),
        ("MICROPIE_MAX_BODY_SIZE", "10 MB", "'10 MB' is not a positive"),
        ("MICROPIE_MAX_BODY_SIZE", "\u0661\u0662", "is not a positive"),  # Arabic-Indic digits
    ],
)
def test_a_bad_setting_is_a_config_error_that_names_it(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({name: value})
    text = str(error.value)
    assert text.startswith(name), text
    assert message in text, text
    assert "s3cret" not in text  # a password never reaches a message or a log


@pytest.mark.parametrize("value", ["https://www.example.com", "www.example.com,.example.com"])
def test_a_bad_host_is_refused_with_apps_own_message(value: str) -> None:
    """The application does not judge host names itself: App does, as it
    does for ``App(allowed_hosts=...)``, and its message is passed on."""
    hosts = [host.strip() for host in value.split(",")]
    with pytest.raises(ValueError) as apps:
        App(allowed_hosts=hosts)
    with pytest.raises(ConfigError) as error:
        load_settings({"MICROPIE_ALLOWED_HOSTS": value})
    assert str(apps.value).startswith("allowed_hosts: ")
    assert str(error.value) == "MICROPIE_ALLOWED_HOSTS: " + str(apps.value).removeprefix(
        "allowed_hosts: "
    )
    assert error.value.__cause__ is None and error.value.__suppress_context__


def host_answers(client: TestClient, host: str) -> tuple[int, int | None]:
    """The status of ``/health`` for a request naming *host*, and the HTTP status
    that refused a WebSocket handshake naming it (None: accepted, and it echoes)."""
    status = client.get("/health", headers={"Host": host}).status_code
    try:
        with client.websocket_connect("/echo", headers={"Host": host}) as ws:
            ws.send_text("hi")
            assert ws.receive_text() == "hi"
    except WebSocketRejected as rejected:
        return status, rejected.status_code
    return status, None


def test_the_hosts_it_is_given_are_the_only_ones_it_answers() -> None:
    settings = load_settings({"MICROPIE_ALLOWED_HOSTS": "www.example.com,localhost,127.0.0.1"})
    client = TestClient(make_app(settings))
    for host in ("www.example.com", "WWW.Example.com:443", "localhost:8000", "127.0.0.1"):
        assert host_answers(client, host) == (200, None), host
    for host in ("attacker.example", "www.example.com.attacker.example", "testserver"):
        assert host_answers(client, host) == (400, 403), host
    refused = client.get("/", headers={"Host": "attacker.example"})
    assert refused.text == "the Host header names a host that this site does not serve"


def test_without_the_setting_it_answers_any_host() -> None:
    """Unset, as App's default: the check is off, and every name gets in."""
    settings = load_settings({})
    assert settings.allowed_hosts == ("*",)
    site = make_app(settings)
    assert site.allowed_hosts == App().allowed_hosts
    client = TestClient(site)
    for host in ("attacker.example", "www.example.com", "127.0.0.1:8000"):
        assert host_answers(client, host) == (200, None), host


# The unit file.


def test_the_page_shows_each_file_under_the_name_it_uses() -> None:
    assert captions_of_file(PAGE, "examples/deploy/app.py") == ["app.py"]
    assert captions_of_file(PAGE, "examples/deploy/micropie.service") == ["micropie.service"]
    assert captions_of_file(PAGE, "examples/deploy/Dockerfile") == ["Dockerfile"]


def test_the_unit_file_is_what_the_page_says() -> None:
    unit = parse_unit(UNIT_FILE.read_text(encoding="utf-8"))
    argv = shlex.split(unit_value(unit, "Service", "ExecStart"))
    assert argv[:2] == ["/srv/micropie/.venv/bin/uvicorn", "app:app"]
    assert unit_value(unit, "Service", "WorkingDirectory") == "/srv/micropie"
    # Its environment is what app.py takes, and shares sessions between the workers.
    settings = load_settings(unit_environment(unit))
    assert settings.redis_url is not None
    # It answers for the site's own name, which its pages' origin names, and
    # for a health check on the machine: nothing else.
    (origin,) = settings.allowed_origins
    site = origin.removeprefix("https://")
    assert set(settings.allowed_hosts) == {site, "localhost", "127.0.0.1"}
    assert int(option_value(argv, "--workers")) > 1
    # SIGTERM to uvicorn alone; the handlers' timeout inside systemd's.
    assert unit_value(unit, "Service", "KillMode") == "mixed"
    graceful = int(option_value(argv, "--timeout-graceful-shutdown"))
    assert graceful < int(unit_value(unit, "Service", "TimeoutStopSec"))
    assert option_value(argv, "--forwarded-allow-ips") == "127.0.0.1"
    assert "--proxy-headers" in argv


# The Dockerfile.


def test_the_dockerfile_is_what_the_page_says() -> None:
    instructions = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    assert "app.py ." in docker_values(instructions, "COPY")
    (user,) = docker_values(instructions, "USER")
    assert user not in ("root", "0")
    argv = docker_cmd(instructions)  # the exec form, or gunicorn is not process 1
    assert argv[:2] == ["gunicorn", "app:app"]
    assert option_value(argv, "--worker-class") == "uvicorn_worker.UvicornWorker"
    assert "--workers" not in argv  # WEB_CONCURRENCY decides
    assert int(option_value(argv, "--graceful-timeout")) < DOCKER_STOP_TIMEOUT


def test_the_dockerfile_installs_what_the_tests_run_it_with() -> None:
    """Each package its ``pip install`` names (but MicroPie's wheel) is installed
    here, in a version that the requirement accepts: the e2e test runs the
    ``CMD`` with those."""
    require_module("gunicorn")
    require_module("uvicorn_worker")
    instructions = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    (run,) = [args for args in docker_values(instructions, "RUN") if "pip install" in args]
    words = shlex.split(run.partition("&&")[0])
    assert words[:2] == ["pip", "install"]
    requirements = [Requirement(word) for word in words[2:] if not word.startswith(("-", "/"))]
    assert {r.name for r in requirements} >= {"gunicorn", "uvicorn-worker", "uvicorn", "redis"}
    for requirement in requirements:
        version = importlib.metadata.version(requirement.name)
        assert requirement.specifier.contains(version), (requirement, version)


def test_uvicorn_warns_that_its_own_worker_module_is_deprecated() -> None:
    """Why the page names uvicorn-worker's class, not ``uvicorn.workers.UvicornWorker``."""
    require_module("gunicorn")
    result = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", "import uvicorn.workers"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DeprecationWarning" in result.stderr
    assert "uvicorn-worker" in result.stderr
    result = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", "import uvicorn_worker"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
