"""Reading a project's layout: its top-level names, where they live, whether it must be built."""

from __future__ import annotations

import importlib.machinery
import sys
import textwrap
import types
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlperf.project import discover, find_project_dir, foreign_modules


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


SETUPTOOLS = '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'


@pytest.mark.parametrize(
    ("files", "modules", "found_by"),
    [
        pytest.param(
            {
                "pyproject.toml": '[project]\nname = "flat-pkg"\n',
                "flat_pkg/__init__.py": "",
                "tests/__init__.py": "",
                "docs/conf.py": "",
                "setup_helpers/__init__.py": "",
            },
            {"flat_pkg": "flat_pkg"},
            "tree scan",
            id="flat, name guessed from the project",
        ),
        pytest.param(
            {
                "pyproject.toml": '[project]\nname = "x"\n',
                "src/a/__init__.py": "",
                "src/b/__init__.py": "",
                "tests/__init__.py": "",
            },
            {"a": "src/a", "b": "src/b"},
            "tree scan",
            id="src layout, several packages",
        ),
        pytest.param(
            {
                "pyproject.toml": SETUPTOOLS + '[tool.setuptools]\npackage-dir = {"" = "lib"}\n',
                "lib/pkg/__init__.py": "",
                "lib/pkg/sub/__init__.py": "",
            },
            {"pkg": "lib/pkg"},
            "[tool.setuptools]",
            id="setuptools package-dir root",
        ),
        pytest.param(
            {
                "pyproject.toml": SETUPTOOLS
                + '[tool.setuptools]\npackages = ["one", "two", "two.sub"]\n'
                'package-dir = {"one" = "code/one", "two" = "code/two"}\npy-modules = []\n',
                "code/one/__init__.py": "",
                "code/two/__init__.py": "",
            },
            {"one": "code/one", "two": "code/two"},
            "[tool.setuptools]",
            id="setuptools explicit mapping",
        ),
        pytest.param(
            {
                "pyproject.toml": SETUPTOOLS + '[tool.setuptools.packages.find]\nwhere = ["src"]\n'
                'include = ["acme*"]\n',
                "src/acme/__init__.py": "",
                "src/other/__init__.py": "",
            },
            {"acme": "src/acme"},
            "[tool.setuptools]",
            id="setuptools find with include",
        ),
        pytest.param(
            {
                "pyproject.toml": SETUPTOOLS,
                "src/ns/alpha/__init__.py": "",
                "src/ns/beta/mod.py": "",
            },
            {"ns.alpha": "src/ns/alpha"},
            "tree scan",
            id="namespace package: its regular packages",
        ),
        pytest.param(
            {
                "setup.cfg": "[options]\npackage_dir =\n    =src\npackages = find:\n"
                "py_modules = tool\n"
                "[options.packages.find]\nwhere = src\n",
                "src/cfgpkg/__init__.py": "",
                "src/tool.py": "",
            },
            {"cfgpkg": "src/cfgpkg", "tool": "src/tool.py"},
            "setup.cfg",
            id="setup.cfg",
        ),
        pytest.param(
            {
                "setup.py": "from setuptools import setup\nsetup(package_dir={'': 'source'})\n",
                "source/sp/__init__.py": "",
            },
            {"sp": "source/sp"},
            "setup.py",
            id="setup.py package_dir",
        ),
        pytest.param(
            {
                "pyproject.toml": '[tool.hatch.build.targets.wheel]\npackages = ["src/hp"]\n',
                "src/hp/__init__.py": "",
            },
            {"hp": "src/hp"},
            "[tool.hatch.build]",
            id="hatch packages",
        ),
        pytest.param(
            {
                "pyproject.toml": '[project]\nname = "fl"\n[tool.flit.module]\nname = "flitmod"\n',
                "src/flitmod.py": "",
            },
            {"flitmod": "src/flitmod.py"},
            "[tool.flit.module]",
            id="flit single module",
        ),
        pytest.param(
            {
                "pyproject.toml": '[tool.pdm.build]\npackage-dir = "python"\n',
                "python/pd/__init__.py": "",
            },
            {"pd": "python/pd"},
            "[tool.pdm.build]",
            id="pdm package-dir",
        ),
        pytest.param(
            {
                "pyproject.toml": '[tool.poetry]\npackages = [{include = "po", from = "lib"}]\n',
                "lib/po/__init__.py": "",
            },
            {"po": "lib/po"},
            "[tool.poetry] packages",
            id="poetry from",
        ),
    ],
)
def test_layouts_are_read_from_the_build_configuration(
    tmp_path: Path, files: dict[str, str], modules: dict[str, str], found_by: str
) -> None:
    layout = discover(_tree(tmp_path, files))
    assert {k: str(v.relative_to(tmp_path)) for k, v in layout.modules.items()} == modules
    assert layout.found_by == found_by
    assert layout.needs_build is None


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        (
            {
                "setup.py": "from setuptools import Extension, setup\n"
                "setup(ext_modules=[Extension('m', ['m.c'])])\n"
            },
            "setup.py builds extension modules",
        ),
        (
            {
                "pyproject.toml": '[build-system]\nbuild-backend = "maturin"\n'
                '[tool.maturin]\nmodule-name = "rs"\n'
            },
            "compiles code",
        ),
        (
            {
                "pyproject.toml": '[tool.setuptools_scm]\nversion_file = "src/v/_version.py"\n',
                "src/v/__init__.py": "",
            },
            "generates a version module",
        ),
        (
            {
                "pyproject.toml": '[tool.hatch.build.hooks.vcs]\nversion-file = "src/h/_v.py"\n',
                "src/h/__init__.py": "",
            },
            "hatch build hook",
        ),
        (
            {
                "pyproject.toml": '[project]\nname = "cy"\n',
                "src/cy/__init__.py": "",
                "src/cy/fast.pyx": "",
            },
            "cy holds native source 'cy/fast.pyx'",
        ),
        (
            {
                "pyproject.toml": SETUPTOOLS
                + '[tool.setuptools]\npackages = ["pkg"]\npackage-dir = {"pkg" = "lib"}\n',
                "lib/__init__.py": "",
            },
            "maps a package to a directory of another name",
        ),
    ],
)
def test_projects_that_must_be_built_say_why(
    tmp_path: Path, files: dict[str, str], reason: str
) -> None:
    assert reason in (discover(_tree(tmp_path, files)).needs_build or "")


def test_the_project_directory_is_found_upwards_but_not_past_the_checkout(tmp_path: Path) -> None:
    _tree(tmp_path, {"repo/services/api/pyproject.toml": "", "repo/services/api/bench/x.py": ""})
    assert (
        find_project_dir(tmp_path / "repo/services/api/bench", tmp_path / "repo")
        == (tmp_path / "repo/services/api").resolve()
    )
    assert find_project_dir(tmp_path / "repo/services", tmp_path / "repo") is None


def test_a_module_from_outside_the_side_is_foreign_even_through_a_symlink(tmp_path: Path) -> None:
    side, elsewhere = tmp_path / "side", tmp_path / "elsewhere"
    (side / "pkg").mkdir(parents=True)
    (elsewhere / "pkg").mkdir(parents=True)
    (side / "link").symlink_to(elsewhere / "pkg")
    mods = {
        "pkg": types.SimpleNamespace(__file__=str(side / "pkg" / "__init__.py")),
        "pkg.sub": types.SimpleNamespace(
            __file__=str(side / "link" / "sub.py")
        ),  # really elsewhere
        "pkg.ns": types.SimpleNamespace(__path__=[]),  # a namespace: nothing to check
        "pkgother": types.SimpleNamespace(__file__="/usr/lib/pkgother.py"),  # another package
        "pkg.fast": types.SimpleNamespace(
            __file__=str(side / "pkg" / "fast.cpython-311-x86_64-linux-gnu.so")
        ),
    }
    assert foreign_modules(["pkg"], [str(side)], modules=mods) == [
        ("pkg.sub", str((elsewhere / "pkg" / "sub.py").resolve()))
    ]
    # A checkout whose compiled modules must come from its build: the in-tree .so is foreign.
    found = foreign_modules(["pkg"], [str(side)], [str(tmp_path / "build")], modules=mods)
    assert [name for name, _ in found] == ["pkg.fast", "pkg.sub"]


_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True).filter(
    lambda n: (
        n not in {"src", "tests", "test", "docs", "bench", "build", "setup", "conftest"}
        and n not in sys.stdlib_module_names
    )
)


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(_NAMES, min_size=1, max_size=3, unique=True),
    base=st.sampled_from(["", "src", "lib/python"]),
    namespace=st.one_of(st.none(), _NAMES),
    config=st.sampled_from(["scan", "setuptools", "hatch"]),
)
def test_every_discovered_name_imports_from_the_tree_through_the_search_dirs(
    tmp_path_factory: pytest.TempPathFactory,
    names: list[str],
    base: str,
    namespace: str | None,
    config: str,
) -> None:
    """The property that would have caught ``mlperf ab`` measuring the installed copy: put the
    search directories first on the path, and every name the layout lists resolves inside
    the tree, at the directory the layout says."""
    root = tmp_path_factory.mktemp("proj")
    prefix = f"{base}/" if base else ""
    ns = f"{namespace}/" if namespace and namespace not in names else ""
    files = {f"{prefix}{ns}{n}/__init__.py": "" for n in names}
    if config == "setuptools" or (config == "scan" and base == "lib/python"):
        where = base or "."
        files["pyproject.toml"] = (
            f'{SETUPTOOLS}[tool.setuptools.packages.find]\nwhere = ["{where}"]\n'
        )
    elif config == "hatch":
        pkgs = ", ".join(f'"{prefix}{ns}{n}"' for n in names)
        files["pyproject.toml"] = f"[tool.hatch.build.targets.wheel]\npackages = [{pkgs}]\n"
    else:
        files["pyproject.toml"] = '[project]\nname = "whatever"\n'
    layout = discover(_tree(root, files))
    dotted = [f"{namespace}.{n}" if ns else n for n in names]
    if config == "hatch" and ns:  # hatch names the package directory, not the namespace
        dotted = names
    else:
        assert sorted(layout.modules) == sorted(dotted)
    path = [str(d) for d in layout.search_dirs]
    for name, where in layout.modules.items():
        parts = name.split(".")
        spec = importlib.machinery.PathFinder.find_spec(parts[0], path)
        for part in parts[1:]:
            assert spec is not None and spec.submodule_search_locations is not None
            spec = importlib.machinery.PathFinder.find_spec(
                part, list(spec.submodule_search_locations)
            )
        assert spec is not None and spec.origin is not None, (name, path)
        assert Path(spec.origin).resolve().parent == where.resolve()
