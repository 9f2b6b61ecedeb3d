"""The import graph: layers import only downward, nothing imports in a cycle, and the indexer uses only the
SDK's public surface (what `deai_data/__init__.py` exports). Every import counts, deferred ones included."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# deai_data's layers as docs/architecture.md lists them, lowest first: a module may import its own package
# or any lower layer.
LAYERS = [{"errors", "version", "buffers", "home", "display"}, {"crypto"}, {"formats"}, {"storage"}, {"dataset"},
          {"chain"}, {"market"}, {"loader"}, {"torch", "ray"}, {"catalog"}, {"cli"}]


def modules() -> dict[str, Path]:
    found = {}
    for root, package in ((REPO, "deai_data"), (REPO / "indexer", "deai_indexer")):
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of the two packages that `name` imports (resolved; `from x import y` counts x.y when y is
    a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "deai_data" or len(parts) == 1 or parts[1] == "__main__":
        return None  # the package's re-exports and entry point sit above every layer
    return next(i for i, names in enumerate(LAYERS) if parts[1] in names)


def test_every_layer_imports_only_downward():
    upward = []
    for module, targets in graph().items():
        mine = layer(module)
        for target in targets:
            if target.startswith("deai_data") and layer(target) is None and module.startswith("deai_data") \
                    and layer(module) is not None:
                upward.append(f"{module} -> {target} (the package's top, above every layer)")
            elif mine is not None and target.startswith("deai_data") and layer(target) is not None:
                same_package = module.split(".")[1] == target.split(".")[1]
                if layer(target) > mine or (layer(target) == mine and not same_package):
                    upward.append(f"{module} -> {target}")
            elif module.startswith("deai_data") and target.startswith("deai_indexer"):
                upward.append(f"{module} -> {target} (the SDK must not need the indexer)")
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))


def test_the_indexer_uses_only_the_sdks_public_surface():
    private = sorted(f"{module} -> {target}" for module, targets in graph().items() if module.startswith("deai_indexer")
                     for target in targets if target.startswith("deai_data") and target != "deai_data")
    assert not private, "the indexer imports SDK internals:\n" + "\n".join(private)


def test_no_import_cycles():
    edges = graph()
    cycles = []
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if target == node.rpartition(".")[0] or node.startswith(target + "."):
                continue  # a module importing its own package's __init__ (re-exports) is not a cycle
            if state[target] == 1:
                cycles.append(" -> ".join([*stack[stack.index(target):], target]))
            elif state[target] == 0:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if state[node] == 0:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
