"""The operator documentation follows the code: every setting, job and command is in README.md.

The configuration table, the example production environment and the command table are read by
operators who never open the code; a variable, a bound, a job or a command added there and not
here would be found only in production.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from app import config
from app.cli import register_cli
from app.jobs import JOBS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ENV_EXAMPLE = (ROOT / "config" / "production.env.example").read_text(encoding="utf-8")
# Read by the launchers and the test suite rather than by the service; documented in the same table.
NOT_READ_BY_CONFIG = {
    "PORT": ROOT / "scripts" / "dev_server.py",
    "WALLET_TEST_POSTGRES_URL": ROOT / "tests" / "conftest.py",
    "WALLET_REQUIRE_POSTGRES": ROOT / "tests" / "conftest.py",
    "WALLET_REQUIRE_BROWSER": ROOT / "tests" / "e2e" / "conftest.py",
}


def _config_reads() -> dict[str, ast.Call | None]:
    """The environment variables app/config.py reads, each with its ``_int``/``_optional_int``
    call when it is a bounded number."""
    tree = ast.parse(Path(config.__file__).read_text(encoding="utf-8"))
    names: dict[str, ast.Call | None] = {}

    def constant(node) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isupper():
            return node.value
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "get" and isinstance(func.value, ast.Name) \
                    and func.value.id == "env" and node.args and constant(node.args[0]):
                names.setdefault(constant(node.args[0]), None)
            if isinstance(func, ast.Name) and func.id in ("_int", "_optional_int") and len(node.args) > 1 \
                    and constant(node.args[1]):
                names[constant(node.args[1])] = node
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "env" \
                and constant(node.slice):
            names.setdefault(constant(node.slice), None)
    return names


def _readme_rows() -> dict[str, tuple[str, str]]:
    """README's configuration table: variable -> (meaning, default)."""
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| `([A-Z0-9_]+)` \| (.*) \| (.*) \|", line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def _value(node: ast.AST) -> int:
    return eval(compile(ast.Expression(node), "app/config.py", "eval"), vars(config))  # noqa: S307


CONFIG_READS = _config_reads()


def test_the_config_module_is_read_as_expected():
    # Guards the reading above: it must find the variables, bounded and not.
    assert {"APP_ENV", "DATABASE_URL", "SECRET_KEY", "TOPUP_EXPIRY_MINUTES", "PREPAID_CARD_VALIDITY_DAYS"} \
        <= CONFIG_READS.keys()
    assert CONFIG_READS["TOPUP_EXPIRY_MINUTES"] is not None


@pytest.mark.parametrize("name", sorted(CONFIG_READS))
def test_every_variable_the_config_reads_is_in_the_readme_table_and_the_example(name):
    assert name in _readme_rows(), f"README.md's configuration table lacks {name}"
    assert re.search(rf"^#? ?{name}\b", ENV_EXAMPLE, re.MULTILINE), \
        f"config/production.env.example lacks {name}"


@pytest.mark.parametrize("name", sorted(name for name, call in CONFIG_READS.items() if call is not None))
def test_every_bounded_number_has_its_true_default_and_maximum_in_the_readme(name):
    call = CONFIG_READS[name]
    meaning, default = _readme_rows()[name]
    maximum = _value(next(k.value for k in call.keywords if k.arg == "maximum"))
    assert re.search(rf"\bat most {maximum}(?![0-9])", meaning), f"README.md: {name} should say 'at most {maximum}'"
    if call.func.id == "_int":
        assert default == f"`{_value(call.args[2])}`", f"README.md: {name} defaults to {_value(call.args[2])}"
    else:
        assert default.startswith("unset"), f"README.md: {name} is unset by default"


def test_the_readme_table_names_no_variable_nothing_reads():
    for name in _readme_rows().keys() - CONFIG_READS.keys():
        assert name in NOT_READ_BY_CONFIG, f"README.md documents {name}, which app/config.py does not read"
        assert f'"{name}"' in NOT_READ_BY_CONFIG[name].read_text(encoding="utf-8"), name


def test_the_readme_names_every_app_env_and_log_level():
    meaning = _readme_rows()["APP_ENV"][0]
    for name in config.APP_ENVS:
        assert f"`{name}`" in meaning
    meaning = _readme_rows()["LOG_LEVEL"][0]
    for level in config.LOG_LEVELS:
        assert f"`{level}`" in meaning


def test_every_job_is_in_the_readme_with_its_interval():
    row = next(line for line in README.splitlines() if line.startswith("| `flask --app wsgi jobs run NAME`"))
    for name, job in JOBS.items():
        assert f"`{name}`" in row, f"README.md's jobs run row lacks {name}"
    for name in re.findall(r"`([a-z]+(?:-[a-z]+)+)` \(hourly", README):
        assert JOBS[name].interval_seconds == 3600, f"README.md calls {name} hourly"


def _readme_commands() -> set[str]:
    """The commands of README's operator table, without their arguments."""
    commands = set()
    for line in README.splitlines():
        match = re.match(r"\| `flask --app wsgi ([a-z ]+?)(?: [A-Z\[-].*)?`", line)
        if match:
            commands.add(match.group(1).strip())
    return commands


def test_the_readme_command_table_is_every_operator_command():
    from flask import Flask

    app = Flask(__name__)
    register_cli(app)
    registered = set()
    for name, command in app.cli.commands.items():
        subcommands = getattr(command, "commands", None)
        registered |= {f"{name} {sub}" for sub in subcommands} if subcommands else {name}
    assert _readme_commands() == registered


# The operator commands the HTTP and operator contract names; clients and runbooks are written
# against them, so they must stay registered and documented.
CONTRACT_COMMANDS = {"db upgrade", "token create", "ledger verify", "jobs list", "jobs run", "scheduler"}


def test_every_operator_command_of_the_contract_is_in_the_readme():
    assert CONTRACT_COMMANDS <= _readme_commands()
