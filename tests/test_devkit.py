"""The dev tooling stays out of production: no fake is installed, no product module uses it."""

import ast
from pathlib import Path

from django.conf import settings

import config.settings
import config.settings_dev
from tests.fresh_process import run_python

PRODUCT_PACKAGES = ("jobs", "loyalty", "exchanges", "bibliotheca", "commerce")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_production_settings__install_no_dev_tooling():
    assert "devkit" not in config.settings.INSTALLED_APPS
    assert "devkit" in config.settings_dev.INSTALLED_APPS
    assert "devkit" in settings.INSTALLED_APPS  # the suite runs with the dev settings


def test_production_settings__register_no_dev_job():
    """The demo's job is devkit's: production's registry (list_jobs, schedules) has none."""
    code = "import django; django.setup(); from jobs.registry import all_jobs; print(*(j.name for j in all_jobs()))"
    out = run_python(code, env={"DJANGO_SETTINGS_MODULE": "config.settings"})
    assert out.returncode == 0, out.stderr
    names = out.stdout.split()
    assert "jobs.prune_history" in names and "devkit.demo_job" not in names


def test_product_code__never_imports_the_dev_tooling():
    root = Path(settings.BASE_DIR)
    files = [
        path
        for package in PRODUCT_PACKAGES
        for path in (root / package).rglob("*.py")
        if "migrations" not in path.parts
    ]
    files.append(root / "config" / "settings.py")
    users = [
        str(path.relative_to(root))
        for path in files
        if any(name == "devkit" or name.startswith("devkit.") for name in imported_modules(path))
    ]
    assert len(files) > 100 and users == []
