"""Each side's own code: where its workers import the project from, and its build.

A worker's ``import pkg`` must find *that revision's* ``pkg``.  An editable install
points at the main checkout and a regular install at whatever was installed last,
so neither may win.  :func:`prepare_code` reads the project's layout
(:mod:`mlperf.project`) and either

* puts the revision's source directories first on the workers' path (pure-Python
  projects: nothing to build, no cost), or
* builds the revision once with the project's own build backend,
  ``pip install --no-deps --target``, into ``builds/<key>/`` under the cache, keyed
  by the tree's git hash and the interpreter (compiled extensions, generated
  modules, build hooks; or ``--build always``).  A second run on the same revision
  reuses the build.

Why pip with ``--target``: it drives any PEP 517 backend exactly as a user's
install does (setuptools, hatchling, flit, pdm, poetry, maturin, scikit-build,
meson-python), it is present wherever pip is, and ``--target`` keeps the build out
of the environment, so two revisions never overwrite each other.  When the
environment already satisfies the project's ``build-system.requires`` the build
runs without isolation (no download, seconds); otherwise pip fetches them.

Each worker then checks, after collection and after every benchmark, that every
imported module of the project came from its side (:attr:`Side.allowed`), and
stops the run with a sentence when one did not.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from mlperf.ab.types import AbError, Side
from mlperf.project import Layout, discover, find_project_dir

__all__ = ["BUILD_CHOICES", "prepare_code"]

#: ``--build``: build when the layout needs it, build every side, or never build
BUILD_CHOICES = ("auto", "always", "never")

_CHECK_BUILD_REQUIRES = r"""
import sys, tomllib, importlib.metadata as md
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
path = sys.argv[1]
data = tomllib.load(open(path, "rb")) if path else {}
reqs = (data.get("build-system") or {}).get("requires", ["setuptools>=40.8.0"])
for r in reqs:
    req = Requirement(r)
    if req.marker and not req.marker.evaluate():
        continue
    try:
        version = md.version(req.name)
    except md.PackageNotFoundError:
        print(r)
        continue
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        print(r)
"""


def prepare_code(
    side: Side,
    tree: Path,
    tree_key: Callable[[], str],
    cache: Path,
    build: str = "auto",
    *,
    own_tree: bool = True,
) -> Layout | None:
    """Point *side* at its own revision's code; build it first when it must be built.

    Parameters
    ----------
    side:
        The side to prepare; its ``code_path``, ``own``, ``allowed`` and ``origin`` are set.
    tree:
        The top of the side's checkout (a worktree, or the repository for the working tree).
    tree_key:
        Gives a hash of the side's project files (git tree id), the key of its cached
        build; called only when the side must be built.
    cache:
        ``mlperf ab``'s cache directory; builds go to ``cache/builds/``.
    build:
        One of :data:`BUILD_CHOICES`.
    own_tree:
        *tree* is a worktree ``mlperf ab`` made (False for the user's working tree,
        which is never written to).

    Returns
    -------
    Layout or None
        The project's layout, or None when no build configuration was found (the
        side is then measured as its tests import it).

    Raises
    ------
    AbError
        When the build fails (with the backend's last lines and the log's path).
    """
    if build not in BUILD_CHOICES:
        raise AbError(
            f"mlperf ab: --build must be one of {', '.join(BUILD_CHOICES)}; got {build!r}"
        )
    side.allowed = [tree]
    project = find_project_dir(side.root, tree)
    if project is None:
        side.origin = (
            "no pyproject.toml, setup.py or setup.cfg: code as the tests import it, "
            f"from {_show(tree)}"
        )
        return None
    layout = discover(project)
    side.own = sorted(layout.modules)
    names = ", ".join(side.own) or "no package of its own"
    if build == "always" or (build == "auto" and layout.needs_build):
        target, reused = _build(side, layout, cache, tree_key)
        side.code_path = [target]
        side.allowed = [target, tree]
        if own_tree:
            _overlay(layout, target)  # the worktree's compiled files are now the build's
        else:  # the user's checkout may hold compiled files of another state
            side.compiled = [target]
        why = layout.needs_build or "--build always"
        side.origin = (
            f"{names} built from {_show(project)} into {_show(target)} "
            f"({why}; {'reused' if reused else 'built now'})"
        )
    else:
        side.code_path = layout.search_dirs
        where = ", ".join(_show(d) for d in side.code_path) or _show(project)
        side.origin = f"{names} from {where} ({layout.found_by})"
    return layout


def _show(path: Path) -> str:
    """*path* relative to the current directory when it lies inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


def _build(
    side: Side, layout: Layout, cache: Path, tree_key: Callable[[], str]
) -> tuple[Path, bool]:
    """Install the side's project into a per-tree directory (reused when already built)."""
    python, key = os.path.realpath(side.python), tree_key()
    digest = hashlib.sha256(f"{key}\0{python}".encode()).hexdigest()[:16]
    builds = cache / "builds"
    target, log = builds / digest, builds / f"{digest}.log"
    if (target / ".mlperf-built").is_file():
        return target, True
    builds.mkdir(parents=True, exist_ok=True)
    scratch = builds / f"{digest}.tmp{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    missing = _missing_build_requires(side.python, layout.root)
    cmd = [
        side.python,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-input",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--target",
        str(scratch),
        str(layout.root),
    ]
    if not missing:
        cmd.insert(4, "--no-build-isolation")
    print(
        f"mlperf ab: building {side.label} ({layout.needs_build or '--build always'}); log: {log}",
        file=sys.stderr,
        flush=True,
    )
    with open(log, "wb") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, cwd=layout.root, check=False
        )
    if proc.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        hint = (
            f"the build needed {', '.join(missing)} from the package index; install them into this "
            "environment to build offline, or fix the build"
            if missing
            else "fix the build"
        )
        raise AbError(
            f"mlperf ab: building {side.label} with {layout.backend or 'setuptools'} failed "
            f"(exit {proc.returncode}); {hint}. Full log: {log}\n  " + "\n  ".join(tail)
        )
    (scratch / ".mlperf-built").write_text(f"{key}\n{python}\n")
    try:
        scratch.rename(target)
    except OSError:  # another run built the same tree meanwhile: keep theirs
        shutil.rmtree(scratch, ignore_errors=True)
    return target, False


def _missing_build_requires(python: str, root: Path) -> list[str]:
    """``build-system.requires`` entries that *python*'s environment does not satisfy."""
    pyproject = root / "pyproject.toml"
    proc = subprocess.run(
        [python, "-c", _CHECK_BUILD_REQUIRES, str(pyproject) if pyproject.is_file() else ""],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return ["(could not read build-system.requires)"]
    return proc.stdout.split()


def _overlay(layout: Layout, target: Path) -> None:
    """Copy the build's compiled and generated files into the side's own worktree.

    A flat-layout project whose tests sit in a package (``tests/__init__.py``) gets
    its root put first on ``sys.path`` by pytest, ahead of the build; with the
    compiled files next to the sources, that root imports the same revision's code.
    Sources are never overwritten.  Only for worktrees ``mlperf ab`` made itself.
    """
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for name, path in layout.modules.items():
        built = target.joinpath(*name.split("."))
        if not (path.is_dir() and built.is_dir()):
            continue
        for src in built.rglob("*"):
            if not src.is_file() or "__pycache__" in src.parts:
                continue
            dest = path / src.relative_to(built)
            if src.name.endswith(suffixes) or not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
