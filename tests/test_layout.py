"""One owner per thing, enforced: which modules may import bottle, peewee, waitress or read os.environ."""

import ast
import sys

from conftest import ROOT

PKG = ROOT / "phlite"


def imports(path):
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0] if not node.module.startswith("phlite") else node.module)
    return names, tree


def modules():
    return sorted(p for p in PKG.rglob("*.py"))


def rel(p):
    return p.relative_to(ROOT).as_posix()


PURE_FLAG_MODULES = sorted((PKG / "flags" / "eval").rglob("*.py")) + [
    PKG / "flags" / f"{name}.py" for name in ("wire", "definitions", "filters")
]


def test_framework_imports_have_one_owner():
    for path in modules():
        names, tree = imports(path)
        r = rel(path)
        if "bottle" in names:
            assert r.startswith("phlite/web/"), f"{r} imports bottle: HTTP belongs in phlite/web/"
        if "peewee" in names:
            assert r.startswith("phlite/store/"), f"{r} imports peewee: SQL belongs in phlite/store/"
        if "waitress" in names:
            assert r == "phlite/cli.py", f"{r} imports waitress"
        if "sqlite3" in names:
            assert r.startswith("phlite/store/"), f"{r} imports sqlite3"
        src = path.read_text()
        if "os.environ" in src:
            assert r == "phlite/config.py", f"{r} reads os.environ: settings belong in phlite/config.py"


def test_pure_modules_do_no_io():
    for path in PURE_FLAG_MODULES + [PKG / "ingest.py", PKG / "normalize.py"]:
        names, _ = imports(path)
        for forbidden in ("bottle", "peewee", "waitress", "sqlite3", "socket", "phlite.store", "phlite.web"):
            assert forbidden not in names, f"{rel(path)} imports {forbidden}"


def test_pure_flag_modules_import_only_the_standard_library_orjson_regex_and_errors():
    # Relative imports stay inside phlite.flags.eval or name phlite.flags.{filters,definitions}: pure too.
    allowed = set(sys.stdlib_module_names) | {"orjson", "regex"}
    pure_phlite = ("phlite.errors", "phlite.flags.eval", "phlite.flags.filters", "phlite.flags.definitions")
    for path in PURE_FLAG_MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found = [f"{node.module}.{a.name}" if node.module == "phlite" else node.module for a in node.names]
            else:
                continue
            for name in found:
                ok = name.split(".")[0] in allowed or name.startswith(pure_phlite)
                assert ok, f"{rel(path)} imports {name}: pure flag modules import only stdlib, orjson, regex, errors"


def test_web_uses_the_flags_package_face_only():
    submodules = {p.stem for p in (PKG / "flags").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    for path in sorted((PKG / "web").glob("*.py")):
        names, tree = imports(path)
        inner = {n for n in names if n.startswith("phlite.flags.")}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "phlite.flags":
                inner |= {f"phlite.flags.{a.name}" for a in node.names if a.name in submodules}
        assert not inner, f"{rel(path)} imports {sorted(inner)}: web handlers use phlite.flags (FlagService, its names)"
