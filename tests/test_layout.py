"""One owner per thing, enforced: which modules may import bottle, peewee, waitress or read os.environ."""

import ast

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
    for path in list((PKG / "flags").rglob("*.py")) + [PKG / "ingest.py", PKG / "normalize.py"]:
        names, _ = imports(path)
        for forbidden in ("bottle", "peewee", "waitress", "sqlite3", "socket", "phlite.store", "phlite.web"):
            assert forbidden not in names, f"{rel(path)} imports {forbidden}"
