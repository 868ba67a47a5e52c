"""Temporary git repositories for the tests of ``mlperf ab`` and its GitHub Action."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["git", "new_repo", "slower_repo"]


def git(repo: Path, *args: str) -> str:
    """Run git in *repo*; its output, stripped (a failure fails the test)."""
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def new_repo(root: Path) -> Path:
    """An empty repository at *root* on branch ``main``, with a committer set."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: apt-get install git")
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    return root


def slower_repo(root: Path, name: str, code: str, slower: str) -> Path:
    """Two commits: *name* holding *code*, then holding *slower*."""
    new_repo(root)
    (root / ".gitignore").write_text(".cache/\n")
    (root / name).write_text(code)
    git(root, "add", ".")
    git(root, "commit", "-qm", "code")
    (root / name).write_text(slower)
    git(root, "commit", "-qam", "slower")
    return root
