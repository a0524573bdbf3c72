"""The built distribution holds the whole package: every module and every file the code reads.

A folder the distribution leaves out works in a source checkout and an editable install and fails
only after ``pip install reidpipe`` (``No module named reidpipe.pipeline.link``), so the files
setuptools would put into the wheel are compared with the source tree here, without building.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_SHIPPED = {".md"}  # a folder's notes for readers of the source; no code reads them


def _shipped_files() -> set[str]:
    """Paths (``reidpipe/...``) of the modules and package data setuptools' ``build_py`` copies."""
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # [tool.setuptools] is "beta" in some setuptools versions
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    dist.script_name = "setup.py"  # build_py resolves package folders against it
    # only what pyproject.toml declares: include_package_data adds files from whatever manifest a
    # build left behind (egg-info), which a clean build machine does not have
    dist.include_package_data = False
    build = dist.get_command_obj("build_py")
    build.ensure_finalized()
    shipped = {_installed(package, f"{module}.py") for package, module, _ in build.find_all_modules()}
    for package, _, _, names in build.data_files:
        shipped |= {_installed(package, name) for name in names}
    return shipped


def _installed(package: str, name: str) -> str:
    return "/".join([*package.split("."), name])


def _source_files() -> set[str]:
    """Every file under ``reidpipe/`` (the links to the top-level folders followed) but caches and notes."""
    found = set()
    for folder, dirs, files in os.walk(ROOT / "reidpipe", followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if Path(name).suffix not in NOT_SHIPPED | {".pyc"}:
                found.add(os.path.relpath(Path(folder) / name, ROOT))
    return found


def test_every_package_folder_and_data_file_is_in_the_distribution(monkeypatch):
    pytest.importorskip("setuptools.config.pyprojecttoml", reason="setuptools (the build backend) is not installed")
    monkeypatch.chdir(ROOT)  # setuptools reads package folders relative to the project root
    shipped = _shipped_files()
    missing = sorted(_source_files() - shipped)
    assert not missing, f"not in the built distribution: {missing}"
    packages = {os.path.dirname(p) for p in shipped if p.endswith("__init__.py")}
    assert {"reidpipe/pipeline/link", "reidpipe/pipeline/gallery", "reidpipe/configs"} <= packages
