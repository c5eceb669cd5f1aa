"""The architecture the code keeps, checked on its source.

- History only through services.audit: no module but audit.py sets `version` or
  `updated_at` or calls simple-history's bulk helpers, so no channel can write a
  change without its history row, user and reason.
- Layers (import-linter, the contract in pyproject.toml): models below services
  below admin | api | interop | tasks | commands, the channels independent of
  each other.
"""

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "registry"
AUDIT = REGISTRY / "services" / "audit.py"
AUDITED_FIELDS = {"version", "updated_at"}
BULK_HELPERS = {"bulk_update_with_history", "bulk_create_with_history"}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def history_bypasses(source: str) -> list[tuple[int, str]]:
    """(line, what) of each write that would go around services.audit."""
    found = []
    for node in ast.walk(ast.parse(source)):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for part in ast.walk(target):  # also `a.version, b = ...`
                if isinstance(part, ast.Attribute) and part.attr in AUDITED_FIELDS:
                    found.append((node.lineno, f"sets .{part.attr}"))
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "setattr" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                    and node.args[1].value in AUDITED_FIELDS:
                found.append((node.lineno, f"setattr(..., {node.args[1].value!r})"))
            if name == "update":  # QuerySet.update writes no history
                found += [(node.lineno, f"update({kw.arg}=...)") for kw in node.keywords
                          if kw.arg in AUDITED_FIELDS]
        if isinstance(node, ast.Name) and node.id in BULK_HELPERS:
            found.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute) and node.attr in BULK_HELPERS:
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.alias) and node.name.rsplit(".", 1)[-1] in BULK_HELPERS:
            found.append((node.lineno, f"imports {node.name}"))
    return sorted(set(found))


def test_history_is_written_only_through_services_audit():
    bypasses = []
    for path in sorted(REGISTRY.rglob("*.py")):
        if path == AUDIT or "migrations" in path.relative_to(REGISTRY).parts:
            continue
        bypasses += [f"{path.relative_to(ROOT)}:{line}: {what}"
                     for line, what in history_bypasses(path.read_text(encoding="utf-8"))]
    assert bypasses == [], "use services.audit (record_save, record_bulk_update, " \
                           "bulk_create_audited) instead:\n" + "\n".join(bypasses)


@pytest.mark.parametrize("source", [
    "visit.version += 1",
    "visit.version = current.version + 1",
    "visit.updated_at = timezone.now()",
    "visit.updated_at: datetime.datetime = now",
    "visit.status, visit.version = 'missed', 2",
    "setattr(visit, 'updated_at', now)",
    "Visit.objects.filter(pk=1).update(version=F('version') + 1)",
    "Visit.objects.filter(pk=1).update(status='missed', updated_at=now)",
    "from simple_history.utils import bulk_update_with_history",
    "from simple_history import utils\nutils.bulk_create_with_history(objs, Visit)",
])
def test_the_history_check_finds_each_kind_of_bypass(source):
    assert history_bypasses(source), source


def test_the_history_check_lets_field_definitions_and_reads_pass():
    source = ("class ClinicalModel(models.Model):\n"
              "    updated_at = models.DateTimeField(auto_now=True)\n"
              "    version = models.PositiveIntegerField(default=1)\n"
              "stale = row.version != expected_version\n"
              "record_save(visit, actor=nurse, expected_version=form.version)\n")
    assert history_bypasses(source) == []


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter's check of the contract in `root`/pyproject.toml, on `root`/registry."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_layers_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(("module", "imports"), [
    ("registry/services/layer_probe.py", "registry.admin.base"),  # a service reaching up
    ("registry/models/layer_probe.py", "registry.services.audit"),  # a model reaching up
    ("registry/api/layer_probe.py", "registry.admin.base"),  # one channel using another
    ("registry/services/layer_probe.py", "registry.tasks"),  # a service enqueueing a task itself
    ("registry/services/layer_probe.py", "registry.admin_site"),  # a service using the admin site
])
def test_the_layers_contract_fails_on_an_import_against_the_layers(tmp_path, module, imports):
    shutil.copytree(REGISTRY, tmp_path / "registry",
                    ignore=shutil.ignore_patterns("__pycache__", "templates", "static"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / module).write_text(f"import {imports}  # noqa: F401\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"Contracts: \d kept, [12] broken\.", result.stdout), result.stdout
    probe = module.removesuffix(".py").replace("/", ".")
    assert probe in result.stdout, result.stdout
