"""Imports point down: each module of sray_transpiler and serverless_ray may import only
its own layer and the layers below it (lazy imports inside functions count too), and
sray_transpiler never imports serverless_ray. A new top-level module or folder must be
given a layer here, which is where the next engineer learns where it stands."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"sray_transpiler": ROOT / "transpiler", "serverless_ray": ROOT / "python" / "serverless_ray"}

# Lowest first. A module's layer is that of its first name below the package
# (`sray_transpiler.passes.fold_constants` -> "passes"); the package itself is the top.
LAYERS = {
    "sray_transpiler": [
        {"diagnostics", "optable", "elementwise", "resources", "ir"},
        {"frontend", "analyses"},
        {"passes"},
        {"backend", "toolchain"},
        {"driver", "config"},
        {"explain", "diagram", "opdoc"},  # reports on the IR
        {"targets"},  # crate -> artifacts
        {"deploy"},  # artifacts -> AWS
        {"cli"},  # the command line: imports everything, imported by nothing
    ],
    "serverless_ray": [
        {"errors", "task_errors", "options", "progress", "refs", "graph", "store"},
        {"codec", "worker_core"},
        {"backends", "lambda_worker"},  # backends run tasks; the worker runs them on Lambda
        {"api"},  # the Ray-like task API over the backends
        {"ops", "reference"},  # the DAG half: numpy and the compiler's frontend
    ],
}
# The one direction allowed between the packages: serverless_ray's reference engine
# reads DAG source with the compiler's frontend.
MAY_IMPORT = {"serverless_ray": {"serverless_ray", "sray_transpiler"}, "sray_transpiler": {"sray_transpiler"}}


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder)
            if rel.parts[0] == "data":
                continue
            parts = [package, *rel.with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _modules()


def imports_of(module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import of the project's packages in `module`."""
    path, is_package = MODULES[module]
    here = module.split(".") if is_package else module.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[: len(here) - node.level + 1] + [node.module or ""]).strip(".") if node.level \
                else node.module
            for a in node.names:
                out.append((node.lineno, f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base))
    return [(line, m) for line, m in out if m.split(".")[0] in PACKAGES]


def layer(module: str) -> int:
    package, *rest = module.split(".")
    if not rest:
        return len(LAYERS[package])  # the package's __init__: the top
    for k, names in enumerate(LAYERS[package]):
        if rest[0] in names:
            return k
    raise AssertionError(f"{module} has no layer: add `{rest[0]}` to LAYERS[{package!r}] in {__file__}")


def test_every_module_has_a_layer():
    for module in MODULES:
        layer(module)


def upward_imports(module: str) -> list[str]:
    """What `module` imports against the rules, one line each."""
    wrong = []
    package = module.split(".")[0]
    for line, imported in imports_of(module):
        target = imported.split(".")[0]
        if target not in MAY_IMPORT[package]:
            wrong.append(f"{MODULES[module][0]}:{line}: {module} imports {imported} ({package} never imports {target})")
        elif target == package and layer(imported) > layer(module):
            wrong.append(f"{MODULES[module][0]}:{line}: {module} (layer {layer(module)}) imports {imported} "
                         f"(layer {layer(imported)}, above it)")
    return wrong


def test_imports_point_down():
    wrong = [w for module in MODULES for w in upward_imports(module)]
    assert not wrong, "imports that point up:\n" + "\n".join(wrong)


def test_the_check_sees_upward_and_forbidden_imports(tmp_path, monkeypatch):
    """The checker itself, on a made-up module of toolchain/ with a lazy import of cli/
    and one of serverless_ray."""
    fake = tmp_path / "fake.py"
    fake.write_text("import os\nfrom .crate import ToolchainError\n\n\ndef f():\n"
                    "    from ..cli.main import main\n    import serverless_ray.ops\n")
    monkeypatch.setitem(MODULES, "sray_transpiler.toolchain.fake", (fake, False))
    wrong = upward_imports("sray_transpiler.toolchain.fake")
    assert len(wrong) == 2, wrong
    assert "fake.py:6: sray_transpiler.toolchain.fake (layer 3) imports sray_transpiler.cli.main" in wrong[0]
    assert "fake.py:7:" in wrong[1] and "never imports serverless_ray" in wrong[1]


def test_the_task_api_does_not_load_numpy_or_the_compiler():
    """`remote`/`map`/`get` users, and the Lambda task worker, import neither numpy nor
    sray_transpiler: the DAG half of serverless_ray loads on first use."""
    script = (
        "import sys\n"
        "import serverless_ray\n"
        "from serverless_ray import remote, get, put, wait, config, ObjectRef, TaskError\n"
        "import serverless_ray.lambda_worker, serverless_ray.worker_core\n"
        "loaded = sorted(m for m in ('numpy', 'sray_transpiler', 'serverless_ray.reference') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
        "from serverless_ray import dag, Input, ops\n"
        "assert 'numpy' in sys.modules and callable(ops.rank) and callable(dag)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
