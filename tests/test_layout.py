"""One owner per thing, enforced: which modules may import what.

The house (README "Layout"): `app.py` builds a running phlite; `ingest/` and `flags/` are the two
pipelines, each behind its package face; `store/` holds all SQL; `web/` all HTTP. The rules below
are issue 10's. A rule about a module that does not exist yet applies as soon as it does.
"""

import ast
import sys

from support import ROOT

PKG = ROOT / "phlite"
STDLIB = sys.stdlib_module_names
# What a pure module may import besides the standard library (and other pure modules).
PURE_THIRD_PARTY = {"orjson", "regex", "sqlglot"}
PURE_PHLITE = {"phlite.errors", "phlite.codec"}
PURE = [
    "phlite/console/auth.py", "phlite/console/home.py", "phlite/console/forms.py", "phlite/console/history.py",
    "phlite/console/charts.py", "phlite/console/insights.py", "phlite/console/views.py",
    "phlite/codec.py",
    "phlite/ingest/wire.py", "phlite/ingest/mixpanel.py", "phlite/ingest/normalize.py",
    "phlite/ingest/rules.py", "phlite/ingest/record.py", "phlite/ingest/lzstring.py", "phlite/ingest/capture_v1.py",
    "phlite/ingest/reports.py", "phlite/ingest/meta.py",
    "phlite/flags/wire.py", "phlite/flags/definitions.py", "phlite/flags/filters.py",
    "phlite/flags/eval/*.py",
    "phlite/lifecycle/formats.py",
    "phlite/query/*.py",
    "phlite/insights/shapes.py",
]
# Until the flags side moves into phlite/flags/ (with the evaluator in flags/eval/), the
# evaluator is phlite/flags/*.py and the flag-serving modules still sit at the top level.
FLAGS_MOVED = (PKG / "flags" / "eval").is_dir()
if not FLAGS_MOVED:
    PURE.append("phlite/flags/*.py")
OLD_FLAG_MODULES = set() if FLAGS_MOVED else {"phlite.flagrequest", "phlite.flagserve", "phlite.flagcache",
                                               "phlite.flagdefs"}
# The services of a running phlite, built only in phlite/app.py.
SERVICES = {"Store", "Ingestion", "FlagService", "RateLimiter", "QueryService", "Console", "InsightService",
            "Monitor", "Forwarder", "Deleter"}  # FlagService builds its own FlagCache
# The parts of ingestion, built only by its face.
INGEST_PARTS = {"Spool", "Writer", "PersonProcessor", "RollupRefresher"}


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(path):
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


def imports(path):
    """Every module `path` imports, by full name (`from phlite import errors` -> phlite.errors)."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_of(path).split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for a in node.names:  # `from pkg import sub` imports the submodule pkg.sub
                base = ROOT / module.replace(".", "/") / a.name
                if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
                    names.add(f"{module}.{a.name}")
                else:
                    names.add(module)
    return names, tree


def modules():
    return sorted(PKG.rglob("*.py"))


def rel(p):
    return p.relative_to(ROOT).as_posix()


def phlite_imports(path):
    return {n for n in imports(path)[0] if n == "phlite" or n.startswith("phlite.")}


def under(name, package):
    return name == package or name.startswith(package + ".")


def test_framework_imports_have_one_owner():
    for path in modules():
        names = {n.split(".")[0] for n in imports(path)[0]}
        r = rel(path)
        if "bottle" in names:
            assert r.startswith("phlite/web/"), f"{r} imports bottle: HTTP belongs in phlite/web/"
        if "peewee" in names:
            assert r.startswith("phlite/store/"), f"{r} imports peewee: SQL belongs in phlite/store/"
        if "waitress" in names:
            assert r in ("phlite/cli.py", "phlite/httpserver.py"), f"{r} imports waitress"
        if "sqlite3" in names:
            assert r.startswith("phlite/store/"), f"{r} imports sqlite3"
        src = path.read_text()
        if "os.environ" in src:
            assert r == "phlite/config.py", f"{r} reads os.environ: settings belong in phlite/config.py"


def test_web_uses_only_the_app_and_the_package_faces():
    # The faces: a package's __init__, never its submodules. store's face gives DatabaseError.
    faces = {"phlite.app", "phlite.errors", "phlite.codec", "phlite.ingest", "phlite.flags", "phlite.store",
             "phlite.query", "phlite.console", "phlite.lifecycle", "phlite.insights", "phlite.monitor"} | OLD_FLAG_MODULES
    for path in (PKG / "web").rglob("*.py"):
        for name in phlite_imports(path):
            assert name in faces or under(name, "phlite.web"), f"{rel(path)} imports {name}"


def test_the_pipelines_do_not_import_each_other_nor_web():
    for own, others in (("ingest", ("phlite.flags", "phlite.web", "phlite.app")),
                        ("flags", ("phlite.ingest", "phlite.web", "phlite.app")),
                        # The query package translates; SQL runs only through the store it is handed.
                        ("query", ("phlite.ingest", "phlite.flags", "phlite.web", "phlite.app", "phlite.store")),
                        # Saved insights run through the query API and the store they are handed.
                        ("insights", ("phlite.ingest", "phlite.flags", "phlite.web", "phlite.app", "phlite.store",
                                      "phlite.console"))):
        for path in (PKG / own).rglob("*.py"):
            for name in phlite_imports(path):
                assert not any(under(name, o) for o in others), f"{rel(path)} imports {name}"


def test_lifecycle_uses_only_the_package_faces():
    # Export, import (and later migrate, forwarding, retention) sit beside the pipelines: they use
    # ingestion, flags and the store through their faces, and never HTTP or the app.
    allowed = {"phlite.errors", "phlite.codec", "phlite.ingest", "phlite.flags", "phlite.store"}
    for path in (PKG / "lifecycle").rglob("*.py"):
        for name in phlite_imports(path):
            assert name in allowed or under(name, "phlite.lifecycle"), f"{rel(path)} imports {name}"


def test_monitor_reads_the_services_it_is_handed():
    # The monitor reads ingestion (and the forwarder) through what app.py hands it, never by import, so
    # that /metrics adds no dependency between the pipelines.
    names, _ = imports(PKG / "monitor.py")
    assert {n for n in names if n.startswith("phlite")} <= {"phlite"}, names
    assert all(n.split(".")[0] in STDLIB or n == "phlite" for n in names), names


def test_store_imports_only_errors():
    for path in (PKG / "store").rglob("*.py"):
        for name in phlite_imports(path):
            assert name == "phlite.errors" or under(name, "phlite.store"), f"{rel(path)} imports {name}"


def pure_modules():
    out = []
    for pattern in PURE:
        out += [p for p in ROOT.glob(pattern) if p.name != "__init__.py" or "*" in pattern]
    return sorted(set(out))


def test_pure_modules_import_only_the_standard_library_orjson_regex_and_errors():
    pure = pure_modules()
    assert ROOT / "phlite/ingest/wire.py" in pure and ROOT / "phlite/ingest/normalize.py" in pure
    pure_names = {module_name(p) for p in pure}
    for path in pure:
        for name in imports(path)[0]:
            top = name.split(".")[0]
            if top == "phlite":
                # `from phlite.flags.eval import x` names the package, whose __init__ is pure too.
                ok = name in PURE_PHLITE or name in pure_names or any(
                    p.startswith(name + ".") for p in pure_names if name.count(".") >= 2)
                assert ok, f"{rel(path)} (pure) imports {name}"
            else:
                assert top in STDLIB or top in PURE_THIRD_PARTY, f"{rel(path)} (pure) imports {name}"
        src = path.read_text()
        for io in ("open(", "socket", "threading", "time.time("):
            assert io not in src, f"{rel(path)} (pure) uses {io}"


def constructed(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name:
                yield name


def test_only_app_constructs_services():
    for path in modules():
        r = rel(path)
        made = set(constructed(imports(path)[1]))
        if r != "phlite/app.py":
            assert not made & SERVICES, f"{r} constructs {made & SERVICES}: services are built in phlite/app.py"
        if r != "phlite/ingest/__init__.py":
            assert not made & INGEST_PARTS, f"{r} constructs {made & INGEST_PARTS}: Ingestion builds its parts"


def test_no_top_level_pipeline_modules_left():
    # Two pipelines, each one package: nothing of them at phlite/ top level.
    top = {p.stem for p in PKG.glob("*.py")}
    old = {"ingest", "normalize", "spool", "writer", "persons", "personprops", "lzstring", "services"}
    if FLAGS_MOVED:
        old |= {"flagrequest", "flagserve", "flagcache", "flagdefs"}
    leftovers = top & old
    assert not leftovers, f"pipeline modules at the top level: {sorted(leftovers)}"


def test_console_has_its_rooms():
    # phlite/console/ is the console's logic behind its face; it reaches data only through the store's
    # face and never HTTP. phlite/web/console/ is its HTTP side: bottle there, and only package faces.
    for path in (PKG / "console").rglob("*.py"):
        for name in phlite_imports(path):
            assert under(name, "phlite.console") or name in {"phlite.errors", "phlite.codec", "phlite.store"}, (
                f"{rel(path)} imports {name}")
        top = {n.split(".")[0] for n in imports(path)[0]}
        assert not top & {"bottle", "waitress", "peewee", "sqlite3"}, f"{rel(path)} imports {top}"
    for path in (PKG / "web" / "console").rglob("*.py"):
        for name in phlite_imports(path):
            assert not under(name, "phlite.console") or name == "phlite.console", f"{rel(path)} imports {name}"
    # jinja2 renders only in phlite/console/render.py, with autoescaping for every template.
    for path in modules():
        if "jinja2" in {n.split(".")[0] for n in imports(path)[0]}:
            assert rel(path) == "phlite/console/render.py", f"{rel(path)} imports jinja2"
    assert "autoescape=True" in (PKG / "console" / "render.py").read_text()
