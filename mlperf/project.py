"""The user's project as Python sees it: its own import packages and where they live.

``mlperf ab`` must measure each revision's own code, and the stored-baseline run
must notice a stale install, so both ask the same question: which top-level
modules does this project ship, and from which directory must ``import`` find
them?  The answer comes from the build configuration (setuptools, hatchling,
flit, pdm, poetry, maturin; ``setup.cfg``; ``setup.py`` by its common idioms)
and, failing that, from the tree.  The same answer says whether the project must
be *built* before its code can be imported (compiled extensions, generated
modules, a build hook): then no source directory will do.

Standard library only: the plugin imports this at start-up.
"""

from __future__ import annotations

import configparser
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Layout", "discover", "find_project_dir", "foreign_modules"]

#: files that mark a project root
_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg")
#: directories never taken for the project's own packages by the tree scan
_NOT_PACKAGES = frozenset(
    {
        "tests",
        "test",
        "testing",
        "bench",
        "benches",
        "benchmarks",
        "docs",
        "doc",
        "examples",
        "example",
        "scripts",
        "tools",
        "build",
        "dist",
        "suites",
        "baselines",
        "site-packages",
        "node_modules",
    }
)
#: build backends whose wheels always contain compiled code
_COMPILING_BACKENDS = ("maturin", "mesonpy", "scikit_build_core", "pybind11", "enscons")
_NATIVE_SUFFIXES = (".pyx", ".pxd", ".c", ".cc", ".cpp", ".cxx", ".rs", ".f90")


@dataclass(frozen=True)
class Layout:
    """Where a project's own code lives in one checkout.

    Attributes
    ----------
    root:
        The project directory (holding ``pyproject.toml``, ``setup.py`` or ``setup.cfg``).
    modules:
        Import name -> the directory (package) or file (module) that provides it, for
        each of the project's top-level names.  A namespace package is entered and its
        regular packages listed instead (``ns.pkg``), since other distributions may
        share the namespace.
    backend:
        The ``build-backend`` named in ``pyproject.toml`` (``None``: setuptools by default).
    needs_build:
        Why the sources cannot be imported as they are (compiled extension, generated
        module, build hook), or ``None`` for a pure-Python project.
    found_by:
        Which configuration the answer came from, for messages.
    """

    root: Path
    modules: dict[str, Path] = field(default_factory=dict)
    backend: str | None = None
    needs_build: str | None = None
    found_by: str = "tree scan"

    @property
    def search_dirs(self) -> list[Path]:
        """Directories to put first on ``sys.path`` so that every name imports from this tree.

        Each top-level name must be importable as ``<dir>/<name>``; a mapping that renames
        a directory (``package-dir = {"pkg" = "lib"}``) cannot be served by a path entry
        and sets :attr:`needs_build` instead.
        """
        dirs: list[Path] = []
        for name, path in self.modules.items():
            top = path
            for _ in name.split("."):
                top = top.parent
            if top not in dirs:
                dirs.append(top)
        return dirs


def find_project_dir(start: Path, stop: Path) -> Path | None:
    """The nearest directory from *start* up to *stop* (inclusive) holding a project marker."""
    here = start.resolve()
    stop = stop.resolve()
    while True:
        if any((here / m).is_file() for m in _MARKERS):
            return here
        if here == stop or here.parent == here or stop not in here.parents:
            return None
        here = here.parent


def discover(root: Path) -> Layout:
    """The :class:`Layout` of the project in *root* (which holds its build configuration)."""
    pyproject = _toml(root / "pyproject.toml")
    backend = str((pyproject.get("build-system") or {}).get("build-backend") or "") or None
    tool = pyproject.get("tool") or {}
    name = str((pyproject.get("project") or {}).get("name") or "")
    why = _build_reason(root, backend, tool)
    found = (
        _from_setuptools(root, tool.get("setuptools"))
        or _from_setup_cfg(root)
        or _from_setup_py(root)
        or _from_hatch(root, tool.get("hatch"))
        or _from_flit(root, tool.get("flit"), name)
        or _from_pdm(root, tool.get("pdm"))
        or _from_poetry(root, tool.get("poetry"))
        or _from_maturin(root, tool.get("maturin"), name)
    )
    how, modules, renamed = found if found else ("tree scan", _scan(root, name), False)
    if renamed and why is None:
        why = f"{how} maps a package to a directory of another name"
    if why is None:
        why = _native_sources(modules)
    return Layout(root, modules, backend, why, how)


def foreign_modules(
    prefixes: list[str],
    roots: list[str],
    compiled_roots: list[str] | None = None,
    modules: dict[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """``(module, file)`` of each imported module under *prefixes* that came from elsewhere.

    A module is foreign when its file lies outside every directory of *roots*, or,
    when *compiled_roots* is given, when it is a compiled extension outside those.
    Files and roots are resolved (symlinks and ``..`` cannot hide where a module came
    from).  Namespace packages have no file and are not checked; their regular
    sub-packages are.
    """
    import importlib.machinery

    mods = sys.modules if modules is None else modules
    real_roots = [os.path.join(os.path.realpath(r), "") for r in roots]
    real_compiled = [os.path.join(os.path.realpath(r), "") for r in compiled_roots or []]
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    out = []
    for name, module in list(mods.items()):
        if not any(name == p or name.startswith(p + ".") for p in prefixes):
            continue
        path = getattr(module, "__file__", None)
        if not path:
            continue
        real = os.path.realpath(path)
        inside = any(real.startswith(r) for r in real_roots)
        if inside and real_compiled and real.endswith(suffixes):
            inside = any(real.startswith(r) for r in real_compiled)
        if not inside:
            out.append((name, real))
    return sorted(out)


# ------------------------------------------------------------------ readers


def _toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def _build_reason(root: Path, backend: str | None, tool: dict[str, Any]) -> str | None:
    """Why this project must be built before import, from its configuration alone."""
    if backend and any(b in backend for b in _COMPILING_BACKENDS):
        return f"its build backend {backend!r} compiles code"
    setup_py = _read(root / "setup.py")
    if re.search(
        r"\b(ext_modules|Extension\(|cythonize|RustExtension|CFFI|cffi_modules)", setup_py
    ):
        return "setup.py builds extension modules"
    if (tool.get("setuptools") or {}).get("ext-modules"):
        return "[tool.setuptools] declares ext-modules"
    scm = tool.get("setuptools_scm") or tool.get("setuptools-scm") or {}
    if scm.get("write_to") or scm.get("version_file"):
        return "setuptools-scm generates a version module"
    hatch = tool.get("hatch") or {}
    hooks = dict((hatch.get("build") or {}).get("hooks") or {})
    hooks.update(
        ((hatch.get("build") or {}).get("targets") or {}).get("wheel", {}).get("hooks") or {}
    )
    if hooks:
        return f"hatch build hook(s) {sorted(hooks)} may generate or compile modules"
    if (tool.get("poetry") or {}).get("build"):
        return "poetry runs a build script"
    if (root / "Cargo.toml").is_file():
        return "Cargo.toml: a Rust extension"
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _native_sources(modules: dict[str, Path]) -> str | None:
    for name, path in modules.items():
        if not path.is_dir():
            continue
        for dirpath, dirnames, files in os.walk(path):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "__pycache__"))]
            native = next((f for f in files if f.endswith(_NATIVE_SUFFIXES)), None)
            if native:
                where = Path(dirpath, native).relative_to(path.parent)
                return f"{name} holds native source {str(where)!r} (a compiled extension)"
    return None


Found = tuple[str, dict[str, Path], bool]  # (how, modules, a mapping renames a directory)


def _packages_in(base: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Top-level importable names directly under *base* (namespace packages entered)."""
    out: dict[str, Path] = {}
    if not base.is_dir():
        return out
    for entry in sorted(base.iterdir()):
        stem = entry.name[:-3] if entry.suffix == ".py" and entry.is_file() else entry.name
        if names is not None and stem not in names:
            continue
        if not stem.isidentifier() or (stem.startswith(("_", ".")) and names is None):
            continue
        if entry.is_file() and entry.suffix == ".py":
            if names is not None or stem not in ("setup", "conftest", "noxfile", "tasks"):
                out[stem] = entry
        elif entry.is_dir() and (names is not None or stem not in _NOT_PACKAGES):
            if (entry / "__init__.py").is_file():
                out[stem] = entry
            elif names is not None or entry.name not in _NOT_PACKAGES:
                for sub, path in _packages_in(entry).items():  # a namespace package
                    if path.is_dir():
                        out[f"{stem}.{sub}"] = path
    return out


def _scan(root: Path, name: str) -> dict[str, Path]:
    """No configuration said where the code is: ``src/`` if it holds packages, else the root."""
    src = _packages_in(root / "src")
    if src:
        return src
    guess = name.replace("-", "_").replace(".", "_").lower()
    found = _packages_in(root)
    if guess and guess in found:
        return {guess: found[guess]}
    return {k: v for k, v in found.items() if v.is_dir()}


def _where(root: Path, package_dir: dict[str, str]) -> tuple[Path, dict[str, Path], bool]:
    """setuptools' ``package-dir``: the root directory and explicit per-package directories."""
    base = root / package_dir.get("", ".")
    explicit = {k: root / v for k, v in package_dir.items() if k}
    renamed = any(k.split(".")[-1] != Path(v).name for k, v in package_dir.items() if k)
    return base, explicit, renamed


def _from_setuptools(root: Path, cfg: dict[str, Any] | None) -> Found | None:
    if not cfg:
        return None
    base, explicit, renamed = _where(root, dict(cfg.get("package-dir") or {}))
    packages = cfg.get("packages")
    modules: dict[str, Path] = {}
    if isinstance(packages, list):
        tops = sorted({p.split(".")[0] for p in packages})
        for top in tops:
            modules[top] = explicit.get(top, base / top.replace(".", "/"))
    else:
        find = (packages or {}).get("find") if isinstance(packages, dict) else None
        wheres = (find or {}).get("where") or [str(base.relative_to(root))]
        include = (find or {}).get("include")
        for where in wheres:
            for top, path in _packages_in(root / where).items():
                if not include or any(_glob(top, pat) for pat in include):
                    modules[top] = path
    for mod in cfg.get("py-modules") or []:
        modules[mod] = base / f"{mod}.py"
    if not modules and not cfg.get("package-dir"):
        return None
    return "[tool.setuptools]", modules or _packages_in(base), renamed


def _glob(name: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(name, pattern.split(".")[0])


def _from_setup_cfg(root: Path) -> Found | None:
    path = root / "setup.cfg"
    if not path.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error:
        return None
    if not parser.has_section("options"):
        return None
    raw = parser.get("options", "package_dir", fallback="").strip()
    mapping = {}
    for line in raw.replace(";", "\n").splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            mapping[key.strip()] = value.strip()
    base, explicit, renamed = _where(root, mapping)
    where = parser.get("options.packages.find", "where", fallback="").strip()
    modules = dict(_packages_in(root / where if where else base))
    modules.update({k: v for k, v in explicit.items() if "." not in k})
    for mod in parser.get("options", "py_modules", fallback="").split():
        modules[mod] = base / f"{mod}.py"
    return ("setup.cfg", modules, renamed) if modules else None


def _from_setup_py(root: Path) -> Found | None:
    text = _read(root / "setup.py")
    if not text:
        return None
    m = re.search(r"package_dir\s*=\s*\{\s*['\"]{2}\s*:\s*['\"]([^'\"]+)['\"]", text)
    base = root / m.group(1) if m else root
    modules = _packages_in(base)
    return ("setup.py", modules, False) if m and modules else None


def _from_hatch(root: Path, cfg: dict[str, Any] | None) -> Found | None:
    wheel = (((cfg or {}).get("build") or {}).get("targets") or {}).get("wheel") or {}
    packages = wheel.get("packages") or (cfg or {}).get("build", {}).get("packages")
    sources = wheel.get("sources")
    if not packages and not sources:
        return None
    modules: dict[str, Path] = {}
    renamed = isinstance(sources, dict) and any(v for v in sources.values())
    for item in packages or []:
        path = root / item
        modules[path.stem if path.suffix == ".py" else path.name] = path
    if isinstance(sources, list) and not packages:
        for prefix in sources:
            modules.update(_packages_in(root / prefix))
    return ("[tool.hatch.build]", modules, bool(renamed)) if modules else None


def _from_flit(root: Path, cfg: dict[str, Any] | None, name: str) -> Found | None:
    if cfg is None:
        return None
    module = str(((cfg.get("module") or {}).get("name")) or name.replace("-", "_"))
    top = module.split(".")[0]
    for base in (root / "src", root):
        hit = _packages_in(base, [top])
        if hit:
            return "[tool.flit.module]", hit, False
    return None


def _from_pdm(root: Path, cfg: dict[str, Any] | None) -> Found | None:
    build = (cfg or {}).get("build") or {}
    if not build.get("package-dir"):
        return None
    modules = _packages_in(root / str(build["package-dir"]))
    return ("[tool.pdm.build]", modules, False) if modules else None


def _from_poetry(root: Path, cfg: dict[str, Any] | None) -> Found | None:
    packages = (cfg or {}).get("packages")
    if not packages:
        return None
    modules: dict[str, Path] = {}
    for spec in packages:
        include = str(spec.get("include", "")) if isinstance(spec, dict) else ""
        if not include or any(c in include for c in "*?["):
            continue
        base = root / str(spec.get("from", "."))
        modules.update(_packages_in(base, [include.removesuffix(".py")]))
    return ("[tool.poetry] packages", modules, False) if modules else None


def _from_maturin(root: Path, cfg: dict[str, Any] | None, name: str) -> Found | None:
    if cfg is None:
        return None
    base = root / str(cfg.get("python-source") or ".")
    top = str(cfg.get("module-name") or name.replace("-", "_")).split(".")[0]
    modules = _packages_in(base, [top]) or {top: base / top}
    return "[tool.maturin]", modules, False
