"""The package's layers (DESIGN.md): module-level imports point down the layers only, and no import cycle runs
through them."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "headsplat"

# package -> layer (higher imports lower, never the reverse)
LAYERS = {
    "core": 0, "media": 0,
    "face": 1,
    "rig": 2, "track": 2, "splat": 2, "render": 2,
    "models": 3,
    "avatar": 4,
    "viewer": 5,  # the browser viewer: an interface that `api.view` starts
    "eval": 5,
    "api": 6,
    "cli": 7,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _top_level_imports(path: Path) -> set[str]:
    """headsplat modules imported at module level (not inside functions, not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else ():
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0 and sub.module.startswith("headsplat"):
                out.add(sub.module)
            elif isinstance(sub, ast.Import):
                out.update(a.name for a in sub.names if a.name.startswith("headsplat"))
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for imp in _top_level_imports(path):
            # "from headsplat.x import y" may name a module y or a name in x
            deps.add(imp if imp in modules else imp.rsplit(".", 1)[0] if imp.rsplit(".", 1)[0] in modules else imp)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_imports_point_down_the_layers():
    bad = sorted(f"{m} -> {d}" for m, deps in _graph().items() for d in deps
                 if _layer(m) is not None and _layer(d) is not None and _layer(d) > _layer(m))
    assert not bad, "imports pointing up the layers: " + "; ".join(bad)


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(cycles)
