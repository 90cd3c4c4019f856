"""The package's layering, held against its imports (read from the source, not from a running process).

* inference never imports the training package;
* only nodes/comfy.py imports ComfyUI; the core imports nothing of ComfyUI or of the nodes;
* nodes reach models only through pervfi_core.engines and pervfi_core.pipeline;
* the pipeline learns what an engine can do from the Engine contract, not by probing attributes.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "pervfi_core"
COMFY_MODULES = ("comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "execution")


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved against the package)."""
    tree = ast.parse(path.read_text(), str(path))
    package = list(path.relative_to(ROOT).with_suffix("").parts)[:-1]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_flat_pipeline_or_weights_modules_remain():
    flat = sorted(p.name for p in CORE.glob("*.py") if p.name.startswith(("pipeline_", "weights_")))
    assert flat == [] and (CORE / "pipeline" / "__init__.py").is_file() and (CORE / "weights" / "__init__.py").is_file()


def test_inference_never_imports_training():
    """Everything but train/ itself and the CLI, which mounts the `train` subcommand, lazily."""
    inference = [p for p in _sources(CORE) if p.relative_to(CORE).parts[0] != "train" and p != CORE / "cli.py"]
    offenders = {str(p.relative_to(ROOT)): sorted(n for n in _imports(p) if n == "pervfi_core.train" or n.startswith("pervfi_core.train."))
                 for p in inference}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_nodes_comfy_imports_comfyui():
    for path in [*_sources(CORE), *_sources(ROOT / "nodes"), ROOT / "__init__.py"]:
        comfy = sorted(n for n in _imports(path) if n.split(".")[0] in COMFY_MODULES)
        if path == ROOT / "nodes" / "comfy.py":
            continue
        assert comfy == [], f"{path.relative_to(ROOT)} imports {comfy}"
    for path in _sources(CORE):
        assert not any(n.startswith("nodes") for n in _imports(path)), f"{path.relative_to(ROOT)} imports the nodes"


def test_nodes_reach_models_only_through_engines_and_the_pipeline():
    allowed = ("pervfi_core.engines", "pervfi_core.pipeline", "pervfi_core.errors", "pervfi_core.checks",
               "pervfi_core.flow.visualize",
               "pervfi_core.allocator")  # the process's heap, not a model: a server's runs give freed pages back
    for path in _sources(ROOT / "nodes"):
        core = {n for n in _imports(path) if n.startswith("pervfi_core.")}
        if path.name == "comfy.py":  # model folders: it hands ComfyUI's folders to the weights store
            core -= {"pervfi_core.weights"}
        bad = sorted(n for n in core if not n.startswith(allowed))
        assert bad == [], f"{path.relative_to(ROOT)} imports {bad}"


def test_the_pipeline_does_not_probe_engines():
    for path in _sources(CORE / "pipeline"):
        calls = [n.func.id for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Name) and n.func.id in ("getattr", "hasattr", "setattr")
                 and isinstance(n.args[0], ast.Name) and n.args[0].id in ("model", "engine", "estimator")]
        assert calls == [], f"{path.relative_to(ROOT)} calls {calls}"


def test_root_entry_only_reexports():
    tree = ast.parse((ROOT / "__init__.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert all(isinstance(c.func, ast.Attribute) and c.func.attr in ("dirname", "abspath", "append") for c in calls)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _core_graph() -> dict[str, set[str]]:
    """Module -> core modules it imports, function-local imports included (an import that only dodges a circle
    at import time is still a circle)."""
    modules = {_module_name(p): p for p in _sources(CORE)}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path):
            while imported and imported not in modules:  # "pkg.mod.Name" -> "pkg.mod"
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(imported + "."):
                targets.add(imported)  # (a package is always imported before its modules: not an edge back)
        graph[name] = targets
    return graph


def test_no_import_circle_in_the_core():
    graph = _core_graph()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert circles == []


def test_the_engine_contract_stands_on_the_floor():
    """engine.py (the contract) and specs.py (registry entries) import no network, loader or pipeline."""
    floor = {"pervfi_core.errors", "pervfi_core.ops.padding"}
    for name in ("engine", "specs"):
        core = {n for n in _core_graph()[f"pervfi_core.{name}"]}
        assert core <= floor, f"pervfi_core/{name}.py imports {sorted(core - floor)}"
