"""The simulators stay out of production code: only their own app (with the commands that run
them, and `make run`'s) imports them. (import-linter keeps the same rule in `make lint`.)"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_production_module_imports_a_simulator():
    offenders = []
    for path in [*ROOT.glob("apps/**/*.py"), *ROOT.glob("config/**/*.py")]:
        relative = str(path.relative_to(ROOT))
        if relative.startswith("apps/simulators/"):
            continue
        if any(name.startswith("apps.simulators") for name in imported_modules(path)):
            offenders.append(relative)

    assert offenders == []
    assert any(
        name.startswith("apps.simulators")
        for name in imported_modules(ROOT / "apps/simulators/management/commands/kie_simulator.py")
    )
