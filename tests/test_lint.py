"""The code passes the linter configured in pyproject.toml, and the console entry point it
declares is the command line's main()."""
import subprocess
import sys
import tomllib
from importlib import import_module
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_console_entry_point_is_the_command_line():
    from lupi_core.__main__ import main

    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["lupi"]
    module, _, name = entry.partition(":")
    assert getattr(import_module(module), name) is main
    installed = Path(sys.executable).parent / "lupi"
    if installed.exists():  # `make` installs the package into .venv
        done = subprocess.run([str(installed), "--help"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "restore" in done.stdout and "diagnose" in done.stdout


def test_the_mutants_tools_checks_still_point_at_real_code():
    from tools.mutants import MUTANTS

    for file, original, _, tests in MUTANTS:
        assert original in (ROOT / file).read_text(), file
        assert (ROOT / tests).is_file()
