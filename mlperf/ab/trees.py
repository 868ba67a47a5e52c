"""Checkouts and environments for ``mlperf ab``: git worktrees and, when needed, a venv.

Both revisions run from the same interpreter whenever their ``pyproject.toml`` is
byte-identical: the worker's ``PYTHONPATH`` puts the checkout first, so ``import
mlperf`` (and the pytest plugin entry point) resolve to that checkout's code.  A
revision with other dependencies gets its own venv, built once per pyproject
under ``.cache/mlperf/ab/venvs/``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AbError",
    "Side",
    "checkout",
    "needs_own_env",
    "prepare_sides",
    "python_for",
    "repo_root",
    "resolve",
]


class AbError(RuntimeError):
    """``mlperf ab`` cannot proceed; the message says why and what to do."""


@dataclass
class Side:
    """One side of an A/B comparison: a checkout, the interpreter to run it, extra env vars."""

    label: str
    root: Path
    python: str = sys.executable
    env: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(
        default_factory=dict
    )  # pytest config.option values, when known there


def _git(repo: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise AbError(
            f"git {' '.join(args)} failed in {str(repo)!r}: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc.stdout.strip()


def repo_root(start: Path | None = None) -> Path:
    """Top of the git work tree containing *start* (default: the current directory)."""
    where = Path(start or Path.cwd())
    if shutil.which("git") is None:
        raise AbError("mlperf ab needs git on PATH to check out the base revision; install git")
    proc = subprocess.run(["git", "-C", str(where), "rev-parse", "--show-toplevel"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise AbError(
            f"mlperf ab: {str(where)!r} is not inside a git checkout; run it from the repository"
        )
    return Path(proc.stdout.strip())


def resolve(repo: Path, rev: str) -> str:
    """Full commit id of *rev*, or an :class:`AbError` that says how to fetch it."""
    proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if proc.returncode == 0 and proc.stdout.strip():
        return proc.stdout.strip()
    shallow = _git(repo, "rev-parse", "--is-shallow-repository", check=False) == "true"
    hint = (
        "this clone is shallow: fetch history with `git fetch --unshallow` (or actions/checkout with fetch-depth: 0)"
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


def needs_own_env(tree: Path, reference: Path) -> bool:
    """True when *tree*'s pyproject.toml differs from *reference*'s (its dependencies may differ)."""
    mine, theirs = reference / "pyproject.toml", tree / "pyproject.toml"
    if not theirs.is_file():
        return False
    return not (mine.is_file() and mine.read_bytes() == theirs.read_bytes())


def python_for(tree: Path, reference: Path, cache: Path, extras: str = "all") -> str:
    """Interpreter for *tree*: this one when pyproject.toml matches *reference*'s, else a venv.

    The venv is keyed by the pyproject's hash and installs ``tree[extras]`` once;
    the checkout still wins on ``PYTHONPATH``, so one venv serves every revision
    with those dependencies.
    """
    if not needs_own_env(tree, reference):
        return sys.executable
    mine, theirs = reference / "pyproject.toml", tree / "pyproject.toml"
    digest = hashlib.sha256(theirs.read_bytes()).hexdigest()[:12]
    venv = cache / "venvs" / digest
    python = venv / "bin" / "python"
    ready = venv / ".mlperf-ready"
    if not ready.is_file():
        shutil.rmtree(venv, ignore_errors=True)
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"],
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                f"{tree}[{extras}]" if extras else str(tree),
            ],
        ]
        print(
            f"mlperf ab: {theirs} differs from {mine}; building a separate venv in {venv}",
            file=sys.stderr,
        )
        for cmd in steps:
            if subprocess.run(cmd, check=False).returncode != 0:
                raise AbError(
                    f"mlperf ab: could not build the venv for {str(tree)!r} ({' '.join(cmd)} failed); "
                    f"fix the install or pass --extras with the extras that install"
                )
        ready.write_text(digest + "\n")
    return str(python)


def _revision(repo: Path, rev: str, cache: Path, extras: str) -> Side:
    sha = resolve(repo, rev)
    tree = checkout(repo, sha, cache)
    side = Side(f"{rev} ({short(repo, sha)})", tree, python_for(tree, repo, cache, extras))
    _share_data_cache(repo, side)
    return side


def prepare_sides(
    repo: Path, base_rev: str, head_rev: str | None, cache: Path, extras: str = "all"
) -> tuple[Side, Side]:
    """Check out *base_rev* (and *head_rev*; default: the working tree as it is) and pick interpreters."""
    base = _revision(repo, base_rev, cache, extras)
    if head_rev is not None:
        return base, _revision(repo, head_rev, cache, extras)
    head_sha = resolve(repo, "HEAD")
    dirty = bool(_git(repo, "status", "--porcelain", "--untracked-files=no", check=False))
    return base, Side(
        f"working tree ({short(repo, head_sha)}{' + changes' if dirty else ''})", repo
    )


def _share_data_cache(repo: Path, side: Side) -> None:
    """Reuse the repository's generated data sets when the revision generates them the same way."""
    mine, theirs = repo / "mlperf" / "data.py", side.root / "mlperf" / "data.py"
    if mine.is_file() and theirs.is_file() and mine.read_bytes() == theirs.read_bytes():
        side.options["mlperf_cache"] = str(repo / ".cache" / "mlperf")
