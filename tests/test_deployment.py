"""The files of docs/source/howto/deployment.rst, read without starting a server.

``examples/deploy/app.py`` reads its settings from the environment; the unit
file and the Dockerfile that the page shows are parsed here, and their
values checked against what the page says of them. The same parsers serve
``test_deployment_e2e.py``, which runs their commands for real.
"""

from __future__ import annotations

import importlib.metadata
import json
import shlex
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

from examples.deploy.app import DEFAULT_MAX_BODY_SIZE, ConfigError, Settings, load_settings
from tests.servers import REPO_ROOT
from tests.support import captions_of_file, require_module

DEPLOY = REPO_ROOT / "examples" / "deploy"
UNIT_FILE = REPO_ROOT / "examples" / "deploy" / "micropie.service"
DOCKERFILE = REPO_ROOT / "examples" / "deploy" / "Dockerfile"
PAGE = REPO_ROOT / "docs" / "source" / "howto" / "deployment.rst"
#: How long ``docker stop`` waits before SIGKILL, unless told otherwise.
DOCKER_STOP_TIMEOUT = 10


# Reading the files.

Unit = dict[str, list[tuple[str, str]]]


def parse_unit(text: str) -> Unit:
    """A systemd unit file: for each section, its ``Key=value`` lines in order
    (a key such as ``Environment`` may come more than once), a line that ends
    in a backslash joined to the next with a space, as systemd does."""
    unit: Unit = {}
    section: list[tuple[str, str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        if section is None or not sep:
            raise ValueError(f"not a unit file line: {raw!r}")
        section.append((key.strip(), value.strip()))
    assert not pending, "the unit file ends in a continuation line"
    return unit


def unit_value(unit: Unit, section: str, key: str) -> str:
    """The one value of *key* in *section*."""
    values = [value for name, value in unit[section] if name == key]
    assert len(values) == 1, f"[{section}] has {len(values)} {key}= lines"
    return values[0]


def unit_environment(unit: Unit) -> dict[str, str]:
    """The variables that the unit's ``Environment=`` lines set."""
    found = {}
    for key, value in unit["Service"]:
        if key == "Environment":
            for assignment in shlex.split(value):
                name, _, setting = assignment.partition("=")
                found[name] = setting
    return found


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """A Dockerfile's instructions, ``(INSTRUCTION, arguments)``, continuation lines joined."""
    instructions = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = pending + line
        pending = ""
        instruction, _, arguments = whole.partition(" ")
        instructions.append((instruction.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends in a continuation line"
    return instructions


def docker_values(instructions: list[tuple[str, str]], name: str) -> list[str]:
    return [arguments for instruction, arguments in instructions if instruction == name]


def docker_environment(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """What the ``ENV KEY=value`` instructions set."""
    found = {}
    for arguments in docker_values(instructions, "ENV"):
        for assignment in shlex.split(arguments):
            name, sep, value = assignment.partition("=")
            assert sep, f"ENV {arguments}: write it as KEY=value"
            found[name] = value
    return found


def docker_cmd(instructions: list[tuple[str, str]]) -> list[str]:
    """The ``CMD``, which must be in the exec form (a JSON list), as the page says."""
    (cmd,) = docker_values(instructions, "CMD")
    argv = json.loads(cmd)
    assert isinstance(argv, list) and all(isinstance(arg, str) for arg in argv), cmd
    return argv


def option_value(argv: list[str], option: str) -> str:
    """The value that *argv* gives *option*, as ``--option value`` or ``--option=value``."""
    values = [
        argv[i + 1] if arg == option else arg.partition("=")[2]
        for i, arg in enumerate(argv)
        if arg == option or arg.startswith(f"{option}=")
    ]
    assert len(values) == 1, f"{option} appears {len(values)} times in {argv}"
    return values[0]


def replace_option(argv: list[str], option: str, value: str | None) -> list[str]:
    """*argv* with *option*'s value replaced by *value*, or the option removed (``None``)."""
    option_value(argv, option)  # there, once
    result: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
            if value is not None:
                result += [option, value]
        elif arg.startswith(f"{option}="):
            if value is not None:
                result.append(f"{option}={value}")
        else:
            result.append(arg)
    return result


# The settings of examples/deploy/app.py.


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, Settings()),
        ({"MICROPIE_ALLOWED_ORIGINS": " "}, Settings()),
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
