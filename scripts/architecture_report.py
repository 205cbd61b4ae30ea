"""Measure the package's layout: upward imports into the entry layer, module and folder import cycles, long
functions, app module sizes.

Usage: ``.venv/bin/python scripts/architecture_report.py [--max_function_lines 60] [--check]``

Reads the source with ``ast`` (nothing is imported). A *folder* is a subpackage of ``easynlp_bp`` (``sft``,
``models``, ...); a module at the package root is a node of its own. With ``--check`` it exits 1 when any
upward import, module cycle, folder cycle, over-long function or app module over ``MAX_APP_MODULE_LINES`` lines
exists (the test suite runs it that way).
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "easynlp_bp"
MAX_APP_MODULE_LINES = 200  # an app is glue: its logic lives in the stage folders
# The entry layer: the apps, the two console scripts and the flag parsing they share. Nothing below imports it.
TOP_LAYER = ("easynlp_bp.appzoo", "easynlp_bp.cli", "easynlp_bp.command_line", "easynlp_bp.serve_cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(tree: ast.AST, known: set[str]) -> set[str]:
    """Project modules imported anywhere in ``tree`` (module-level and inside functions)."""
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            # "from pkg import submodule" loads the submodule; "from pkg import name" runs pkg/__init__
            names = submodules + ([node.module] if not all(m in known for m in submodules) else [])
        found.update(name for name in names if name in known)
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def import_graph(trees: dict[str, ast.AST], known: set[str]) -> dict[str, set[str]]:
    """Module -> project modules it imports, at module level or inside functions (a lazy import is still a
    dependency: a circle through one is a circle in the design)."""
    return {name: {m for m in imported_modules(tree, known) if m != name} for name, tree in trees.items()}


def folder_of(module: str) -> str:
    """``easynlp_bp.sft.data`` -> ``easynlp_bp.sft``; a root module (``easynlp_bp.options``) is its own folder."""
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return ".".join(parts[:2])
    return module


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Folder -> folders its modules import (imports inside one folder are left out)."""
    folders: dict[str, set[str]] = {}
    for name, targets in graph.items():
        source = folder_of(name)
        folders.setdefault(source, set()).update(folder_of(t) for t in targets if folder_of(t) != source)
    return folders


def folder_cycle_edges(graph: dict[str, set[str]], cycles: list[list[str]]) -> list[str]:
    """The module imports that close each folder cycle (``a.x -> b.y`` with both folders in one cycle)."""
    members = {folder: i for i, cycle in enumerate(cycles) for folder in cycle}
    return sorted(f"{name} -> {target}" for name, targets in graph.items() for target in targets
                  if folder_of(name) != folder_of(target)
                  and members.get(folder_of(name), -1) == members.get(folder_of(target), -2))


def long_functions(trees: dict[str, ast.AST], limit: int) -> list[str]:
    out = []
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    out.append(f"{name}.{node.name} ({length} lines)")
    return sorted(out)


def report(limit: int) -> dict:
    files = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    trees = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in files.items()}
    known = set(files)
    upward = []
    for name, tree in trees.items():
        if name.startswith(TOP_LAYER) or name == "easynlp_bp":
            continue
        for target in sorted(imported_modules(tree, known)):
            if target.startswith(TOP_LAYER):
                upward.append(f"{name} -> {target}")
    app_sizes = {name: len(files[name].read_text(encoding="utf-8").splitlines())
                 for name in files if name.startswith("easynlp_bp.appzoo.")}
    largest = max(app_sizes, key=app_sizes.get)
    graph = import_graph(trees, known)
    folder_cycles = find_cycles(folder_graph(graph))
    return {
        "upward_imports": upward,
        "import_cycles": find_cycles(graph),
        "folder_cycles": folder_cycles,
        "folder_cycle_imports": folder_cycle_edges(graph, folder_cycles),
        f"functions_over_{limit}_lines": long_functions(trees, limit),
        "largest_app_module": {largest: app_sizes[largest]},
        f"app_modules_over_{MAX_APP_MODULE_LINES}_lines": sorted(n for n, size in app_sizes.items() if size > MAX_APP_MODULE_LINES),
        "app_module_lines": app_sizes,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max_function_lines", type=int, default=60)
    parser.add_argument("--check", action="store_true",
                        help="Exit 1 if any upward import, module or folder cycle, long function or long app module.")
    args = parser.parse_args(argv)
    result = report(args.max_function_lines)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    bad = (result["upward_imports"] or result["import_cycles"] or result["folder_cycles"]
           or result[f"functions_over_{args.max_function_lines}_lines"]
           or result[f"app_modules_over_{MAX_APP_MODULE_LINES}_lines"])
    return 1 if args.check and bad else 0


if __name__ == "__main__":
    sys.exit(main())
