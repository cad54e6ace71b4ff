"""The files of docs/source/howto/deployment.rst, parsed as systemd and Docker read them.

Shared by tests/unit/test_deployment.py (their values) and
tests/e2e/test_deployment_e2e.py (their commands, run for real).
"""

from __future__ import annotations

import json
import shlex

from tests.helpers.support import REPO_ROOT

UNIT_FILE = REPO_ROOT / "examples" / "deploy" / "micropie.service"
DOCKERFILE = REPO_ROOT / "examples" / "deploy" / "Dockerfile"

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
