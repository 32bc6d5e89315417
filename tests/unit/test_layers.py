"""The import layers point one way (ARCHITECTURE.md, "Layers point one way").

Every module under firmware/, webui/ and softpaks/ is read with `ast` (nothing
is imported), given a layer by its path, and its imports are checked:
no cycle among module-level imports, nothing from firmware/ reaching into
webui/ or softpaks/, no gatebox import inside a function unless listed in
LAZY_IMPORTS with its reason, and no import from a higher layer."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("firmware", "webui", "softpaks")

# Most specific prefix wins.
LAYERS = {
    "firmware": 1,                  # the package itself: the version string
    "firmware.config.db": 1,        # open, transaction
    "firmware.licensing": 2,
    "firmware.plugins": 3,
    "firmware.config": 4,
    "firmware.accounts": 5,
    "firmware.login_limits": 5,
    "firmware.mail": 5,
    "firmware.system": 5,
    "firmware.run": 6,
    "firmware.cli": 6,
    "webui": 6,
    "softpaks": 7,
}

# (importing module, imported module) -> why the import waits for the call.
LAZY_IMPORTS = {
    ("firmware.cli.setup", "firmware.run.start"):
        "the mail stack (aiosmtpd, dnspython) costs half a second to import; only "
        "`gatebox run` needs it, every other command would pay for it",
    ("firmware.cli.setup", "firmware.run.qmgr"):
        "as above, for the queue manager child `gatebox qmgr`",
    ("firmware.cli.setup", "firmware.run.smtpd_workers"):
        "as above, for the other smtpd processes `gatebox smtpd-worker` (and the core count "
        "`gatebox run` sizes them by)",
    ("softpaks.mailserver.hooks", "softpaks.mailserver.web"):
        "the pages bring Flask; only the web admin asks for them, not smtpd, qmgr or the CLI",
    ("softpaks.antispam.hooks", "softpaks.antispam.web"):
        "as for the Mail Server's pages: Flask only where the web admin asks",
    ("softpaks.antivirus.hooks", "softpaks.antivirus.web"):
        "as for the Mail Server's pages: Flask only where the web admin asks",
}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


MODULES = all_modules()


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        layer = LAYERS.get(".".join(parts[:end]))
        if layer is not None:
            return layer
    return None


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = package[:len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def _targets(module: str, path: Path, node) -> list[str]:
    """`from a import b` imports the module a.b when there is one, else a."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = _base(module, path, node)
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
            for alias in node.names]


def imports_of(module: str, path: Path) -> list[Import]:
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                       ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, path, child):
                    if target.split(".")[0] in PACKAGES:
                        found.append(Import(module, target, child.lineno, nested))
            visit(child, nested)

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


IMPORTS = [i for module, path in MODULES.items() for i in imports_of(module, path)]


def _where(item: Import) -> str:
    return f"{MODULES[item.source].relative_to(ROOT)}:{item.line} imports {item.target}"


def test_every_module_has_a_layer():
    assert [m for m in MODULES if layer_of(m) is None] == []


def test_every_import_names_a_gatebox_module():
    # A misspelt or moved module would silently escape the other checks.
    unknown = [_where(i) for i in IMPORTS if i.target not in MODULES]
    assert unknown == []


def test_no_import_from_a_higher_layer():
    upward = [f"{_where(i)} (layer {layer_of(i.source)} -> {layer_of(i.target)})"
              for i in IMPORTS if i.target in MODULES and layer_of(i.target) > layer_of(i.source)]
    assert upward == []


def test_firmware_never_imports_webui_or_softpaks():
    wrong = [_where(i) for i in IMPORTS
             if i.source.split(".")[0] == "firmware" and i.target.split(".")[0] in ("webui", "softpaks")]
    assert wrong == []


def test_no_gatebox_import_inside_a_function_unless_listed():
    lazy = [_where(i) for i in IMPORTS
            if i.in_function and (i.source, i.target) not in LAZY_IMPORTS]
    assert lazy == []


def test_allow_list_has_no_stale_entries():
    used = {(i.source, i.target) for i in IMPORTS if i.in_function}
    assert [entry for entry in LAZY_IMPORTS if entry not in used] == []
    assert all(reason.strip() for reason in LAZY_IMPORTS.values())


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """The first cycle found by depth-first search, as a path that ends where it starts."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for successor in sorted(edges.get(node, ())):
            if state.get(successor) == 1:
                return path[path.index(successor):] + [successor]
            if successor not in state:
                cycle = visit(successor)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def _runs_first(source: str, target: str) -> list[str]:
    """What importing `target` from `source` executes: the target, and the
    packages above it that are not already being imported because they hold
    `source` (importing a.b.c runs a/b/__init__.py first)."""
    parts = target.split(".")
    packages = [".".join(parts[:end]) for end in range(1, len(parts))]
    return [p for p in packages if p in MODULES and not (source + ".").startswith(p + ".")] + [target]


def module_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for item in IMPORTS:
        if item.in_function or item.target not in MODULES:
            continue
        for target in _runs_first(item.source, item.target):
            if target != item.source:
                edges.setdefault(item.source, set()).add(target)
    return edges


def test_no_import_cycle():
    cycle = find_cycle(module_edges())
    assert cycle is None, " -> ".join(cycle)


def test_importing_a_module_runs_the_packages_above_it():
    assert _runs_first("firmware.licensing.activation", "firmware.config.db") == \
        ["firmware.config", "firmware.config.db"]
    assert _runs_first("webui.system.firmware_pages", "webui.security") == ["webui.security"]


@pytest.mark.parametrize("edges, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": {"b2"}, "b2": {"b"}}, ["b", "b2", "b"]),
])
def test_the_cycle_finder_finds_cycles(edges, expected):
    assert find_cycle(edges) == expected


def test_the_layer_map_follows_the_architecture():
    assert layer_of("firmware.config.db") < layer_of("firmware.licensing.verify") \
        < layer_of("firmware.plugins.registry") < layer_of("firmware.config.store") \
        < layer_of("firmware.mail.smtpd") < layer_of("webui.auth") < layer_of("softpaks.mailserver")
