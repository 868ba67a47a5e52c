"""Checkouts and environments for ``mlperf ab``: git worktrees and, when needed, a venv.

Both revisions run from the same interpreter whenever their declared dependencies
are the same (``[project]`` dependencies and extras, ``requires-python``,
``[build-system]``, poetry's and PEP 735's dependency groups): a version bump or a
tool setting does not cost a venv.  A revision with other dependencies gets its own
venv, built once per dependency set under ``.cache/mlperf/ab/venvs/``; it sees this
environment's packages (pytest, pytest-benchmark, mlperf) below its own.  Which
directory each side imports the project's own code from is :mod:`mlperf.ab.code`'s
business.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from mlperf.ab.code import prepare_code
from mlperf.ab.types import AbError, Side

__all__ = [
    "checkout",
    "dependency_key",
    "needs_own_env",
    "prepare_sides",
    "python_for",
    "repo_root",
    "resolve",
    "tree_key",
    "venv_over_this_one",
]


def _git(repo: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False, env=env
    )
    if check and proc.returncode != 0:
        raise AbError(
            f"git {' '.join(args)} failed in {str(repo)!r}: "
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc.stdout.strip()


def repo_root(start: Path | None = None) -> Path:
    """Top of the git work tree containing *start* (default: the current directory)."""
    where = Path(start or Path.cwd())
    if shutil.which("git") is None:
        raise AbError("mlperf ab needs git on PATH to check out the base revision; install git")
    proc = subprocess.run(
        ["git", "-C", str(where), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise AbError(
            f"mlperf ab: {str(where)!r} is not inside a git checkout; run it from the repository"
        )
    return Path(proc.stdout.strip())


def resolve(repo: Path, rev: str) -> str:
    """Full commit id of *rev*, or an :class:`AbError` that says how to fetch it."""
    proc = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode == 0 and proc.stdout.strip():
        return proc.stdout.strip()
    shallow = _git(repo, "rev-parse", "--is-shallow-repository", check=False) == "true"
    hint = (
        "this clone is shallow: fetch history with `git fetch --unshallow` "
        "(or actions/checkout with fetch-depth: 0)"
        if shallow
        else f"fetch it first, e.g. `git fetch origin {rev.split('/', 1)[-1]}`"
        if "/" in rev
        else "give a branch, tag or commit that exists here (`git log --oneline` lists them)"
    )
    raise AbError(f"mlperf ab: cannot resolve revision {rev!r}; {hint}")


def short(repo: Path, sha: str) -> str:
    return _git(repo, "rev-parse", "--short", sha, check=False) or sha[:10]


def checkout(repo: Path, sha: str, cache: Path) -> Path:
    """A detached worktree of *sha* under ``cache/trees/``, reused when it is already there."""
    path = cache / "trees" / sha[:12]
    reusable = path.is_dir() and _git(path, "rev-parse", "HEAD", check=False) == sha
    if reusable and not _git(path, "status", "--porcelain", "--untracked-files=no", check=False):
        return path
    _git(repo, "worktree", "prune", check=False)
    if path.exists():
        _git(repo, "worktree", "remove", "--force", str(path), check=False)
        shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    _git(repo, "worktree", "add", "--detach", "--force", str(path), sha)
    return path


#: what runs write into a checkout, left out of the working tree's hash (untracked but not
#: ignored in many projects): a new report must not make ``mlperf ab`` rebuild the head side
_OUTPUTS = (".cache", ".benchmarks", "reports", "baselines", "build", "dist")


def tree_key(repo: Path, sha: str | None, rel: str) -> str:
    """Git's hash of the files under *rel* at commit *sha*, or in the working tree (``None``).

    The working tree's hash covers uncommitted and untracked (not ignored) files, except
    what runs write (:data:`_OUTPUTS`); it is written through a scratch index, so the
    user's index is never touched.
    """
    spec = f"{sha}:{rel}" if rel else f"{sha}^{{tree}}"
    if sha is not None:
        return _git(repo, "rev-parse", spec)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(repo, "read-tree", "HEAD", env=env)
        outputs = [f"{rel}/{d}" if rel else d for d in _OUTPUTS]
        # Naming an ignored path, even to exclude it, is an error for git add.
        shown = [o for o in outputs if (repo / o).exists() and not _ignored(repo, o)]
        _git(repo, "add", "-A", "--", rel or ".", *(f":(exclude){o}" for o in shown), env=env)
        tree = _git(repo, "write-tree", env=env)
    return _git(repo, "rev-parse", f"{tree}:{rel}") if rel else tree


def _ignored(repo: Path, path: str) -> bool:
    return (
        subprocess.run(
            ["git", "-C", str(repo), "check-ignore", "-q", path], capture_output=True, check=False
        ).returncode
        == 0
    )


def dependency_key(tree: Path) -> str | None:
    """A hash of what *tree*'s ``pyproject.toml`` declares it needs (None without one)."""
    path = tree / "pyproject.toml"
    if not path.is_file():
        return None
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    project = data.get("project") or {}
    poetry = (data.get("tool") or {}).get("poetry") or {}
    wanted = {
        "dependencies": project.get("dependencies"),
        "optional": project.get("optional-dependencies"),
        "python": project.get("requires-python"),
        "build": data.get("build-system"),
        "groups": data.get("dependency-groups"),
        "poetry": [poetry.get("dependencies"), poetry.get("group"), poetry.get("extras")],
    }
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:12]


def needs_own_env(tree: Path, reference: Path) -> bool:
    """True when *tree* declares other dependencies than *reference* (:func:`dependency_key`)."""
    theirs = dependency_key(tree)
    return theirs is not None and theirs != dependency_key(reference)


def python_for(tree: Path, reference: Path, cache: Path, extras: str = "all") -> str:
    """Interpreter for *tree*: this one when its dependencies match *reference*'s, else a venv.

    The venv is keyed by the dependency hash and installs ``tree[extras]`` once.  A
    ``.pth`` file adds this environment's site-packages *after* the venv's own, so
    tools the project does not declare (pytest, pytest-benchmark, mlperf itself)
    are still there, while every package the revision declares is its own version.
    Which directory the project's own code is imported from is decided per side
    (:mod:`mlperf.ab.code`), so one venv serves every revision with those dependencies.
    """
    if not needs_own_env(tree, reference):
        return sys.executable
    digest = dependency_key(tree)
    venv = cache / "venvs" / str(digest)
    python = venv / "bin" / "python"
    ready = venv / ".mlperf-ready"
    if not ready.is_file():
        shutil.rmtree(venv, ignore_errors=True)
        target = f"{tree}[{extras}]" if extras else str(tree)
        print(
            f"mlperf ab: {tree / 'pyproject.toml'} declares other dependencies than "
            f"{reference / 'pyproject.toml'}; building a venv for it in {venv}",
            file=sys.stderr,
        )
        made = venv_over_this_one(venv, with_pip=True)
        cmd = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", target]
        if made is None or subprocess.run(cmd, check=False).returncode != 0:
            raise AbError(
                f"mlperf ab: could not build the venv for {str(tree)!r} ({' '.join(cmd)} failed); "
                "fix the install or pass --extras with the extras that install"
            )
        ready.write_text(f"{digest}\n")
    return str(python)


def venv_over_this_one(venv: Path, *, with_pip: bool = False) -> Path | None:
    """A new venv whose own packages come first and this environment's after them.

    A ``.pth`` line in its site-packages runs ``site.addsitedir`` on this
    environment's, so that directory's own ``.pth`` files (editable installs
    among them) are honoured too.  Returns the venv's python, or None when
    ``python -m venv`` failed.
    """
    cmd = [sys.executable, "-m", "venv", *([] if with_pip else ["--without-pip"]), str(venv)]
    if subprocess.run(cmd, check=False).returncode != 0:
        return None
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    Path(purelib, "_mlperf_parent_env.pth").write_text(
        f"import site; site.addsitedir({parent!r})\n"
    )
    return python


def prepare_sides(
    repo: Path,
    base_rev: str,
    head_rev: str | None,
    cache: Path,
    extras: str = "all",
    build: str = "auto",
    start: Path | None = None,
) -> tuple[Side, Side]:
    """Check out *base_rev* and *head_rev* (default: the working tree as it is); prepare each side.

    *start* (default: the current directory) is where the user stands inside *repo*;
    each side's pytest session runs in that directory's counterpart of its checkout,
    so a project in a sub-directory of a monorepo is measured as it is used.
    """
    _ignore_cache(cache)
    here = (start or Path.cwd()).resolve()
    rel = here.relative_to(repo.resolve()).as_posix() if here != repo.resolve() else ""
    base = _revision(repo, base_rev, cache, extras, build, rel)
    if head_rev is not None:
        return base, _revision(repo, head_rev, cache, extras, build, rel)
    head_sha = resolve(repo, "HEAD")
    dirty = bool(_git(repo, "status", "--porcelain", "--untracked-files=no", check=False))
    head = Side(
        f"working tree ({short(repo, head_sha)}{' + changes' if dirty else ''})", repo / rel
    )
    prepare_code(head, repo, lambda: tree_key(repo, None, rel), cache, build, own_tree=False)
    return base, head


def _revision(repo: Path, rev: str, cache: Path, extras: str, build: str, rel: str) -> Side:
    sha = resolve(repo, rev)
    tree = checkout(repo, sha, cache)
    root = tree / rel
    side = Side(f"{rev} ({short(repo, sha)})", root, python_for(root, repo / rel, cache, extras))
    prepare_code(side, tree, lambda: tree_key(repo, sha, rel), cache, build)
    _share_data_cache(repo, side)
    return side


def _ignore_cache(cache: Path) -> None:
    """Keep git from seeing the cache (worktrees, builds, venvs), as pytest does for its own."""
    top = cache.parent if cache.name == "ab" else cache
    top.mkdir(parents=True, exist_ok=True)
    marker = top / ".gitignore"
    if not marker.is_file():
        marker.write_text("# created by mlperf: nothing in here belongs in git\n*\n")


def _share_data_cache(repo: Path, side: Side) -> None:
    """Reuse the repository's generated data sets when the revision generates them the same way."""
    mine, theirs = repo / "mlperf" / "data.py", side.root / "mlperf" / "data.py"
    if mine.is_file() and theirs.is_file() and mine.read_bytes() == theirs.read_bytes():
        side.options["mlperf_cache"] = str(repo / ".cache" / "mlperf")
