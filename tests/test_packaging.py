"""Packaging: the wheel built by ``python -m build`` installs into an existing
environment and changes none of its packages.

The existing environment is the one running the tests (torch, mmengine and,
on the full stack, the toolboxes): a fresh venv sees its packages through
``site.addsitedir`` views that leave glnet_mm itself out, so pip resolves
``pip install glnet_mm`` against them exactly as in the user's environment.
``--no-index`` means nothing can be fetched: a dependency that the
environment did not already satisfy would fail the install.
"""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import venv

import pytest
from conftest import REPO, needs

import glnet_mm

# What `python -m build` needs from the source tree (a copy: the build writes
# build/ and *.egg-info next to the sources).
SOURCES = ('pyproject.toml', 'LICENSE', 'model-index.yml', 'configs',
           'glnet_mm')


def _is_glnet_mm(name):
    """A file of glnet_mm's installs (package, dist-info, editable hooks)."""
    return 'glnet_mm' in name.lower().replace('-', '_')


def _freezes_glnet_mm(line):
    """A ``pip freeze`` line of glnet_mm (not one naming it in a path)."""
    return re.match(r'glnet[-_]mm\b', line, re.IGNORECASE) is not None


def _site_views(root):
    """The test environment's package folders, as folders of links that
    leave glnet_mm out (its editable install included)."""
    views = []
    sites = [p for p in sys.path
             if osp.isdir(p) and osp.basename(p) in ('site-packages',
                                                     'dist-packages')]
    for i, site_dir in enumerate(dict.fromkeys(sites)):
        view = osp.join(root, f'site{i}')
        os.makedirs(view)
        for name in os.listdir(site_dir):
            if _is_glnet_mm(name):
                continue
            os.symlink(osp.join(site_dir, name), osp.join(view, name))
        views.append(view)
    return views


def _freeze(python):
    out = subprocess.run([python, '-m', 'pip', 'freeze', '--all'],
                         capture_output=True, text=True, check=True,
                         env=_pip_env())
    return sorted(out.stdout.splitlines())


def _pip_env():
    """pip's environment: no config files (an index or constraint there
    must not matter) and no version check."""
    env = dict(os.environ, PIP_CONFIG_FILE=os.devnull,
               PIP_DISABLE_PIP_VERSION_CHECK='1')
    env.pop('PYTHONPATH', None)
    return env


@pytest.mark.slow
def test_wheel_installs_without_changing_the_environment(tmp_path):
    needs('build')  # python -m build
    src = tmp_path / 'src'
    for name in SOURCES:
        path = osp.join(REPO, name)
        if osp.isdir(path):
            shutil.copytree(path, src / name, symlinks=True,
                            ignore=shutil.ignore_patterns('__pycache__'))
        else:
            os.makedirs(src, exist_ok=True)
            shutil.copy(path, src / name)
    dist = tmp_path / 'dist'
    built = subprocess.run(
        [sys.executable, '-m', 'build', '--no-isolation', '--outdir',
         str(dist), str(src)], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheels = [f for f in os.listdir(dist) if f.endswith('.whl')]
    assert wheels == [f'glnet_mm-{glnet_mm.__version__}-py3-none-any.whl']

    # a venv that sees the test environment's packages, not glnet_mm
    env_dir = tmp_path / 'env'
    venv.create(env_dir, with_pip=False)
    python = str(env_dir / 'bin' / 'python')
    purelib = subprocess.run(
        [python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
        capture_output=True, text=True, check=True).stdout.strip()
    views = _site_views(tmp_path / 'views')
    with open(osp.join(purelib, '_existing_env.pth'), 'w') as f:
        f.write('import site; ' + '; '.join(
            f'site.addsitedir({v!r})' for v in views) + '\n')

    before = _freeze(python)
    assert not any(_freezes_glnet_mm(line) for line in before), before
    assert any(re.match(r'torch(==| @)', line) for line in before), before
    install = subprocess.run(
        [python, '-m', 'pip', 'install', '--no-index', '--find-links',
         str(dist), 'glnet_mm'], capture_output=True, text=True,
        env=_pip_env())
    assert install.returncode == 0, install.stdout + install.stderr
    after = _freeze(python)
    assert [line for line in after if not _freezes_glnet_mm(line)] == before
    assert f'glnet_mm=={glnet_mm.__version__}' in after

    # the installed package is the wheel's, with its package data, and
    # importing it imports no toolbox
    probe = subprocess.run(
        [python, '-c', (
            'import sys, os.path as osp, glnet_mm; '
            'print(glnet_mm.__file__); '
            'root = osp.dirname(glnet_mm.__file__); '
            'print(osp.isfile(osp.join(root, ".mim", "model-index.yml"))); '
            'print(osp.isfile(osp.join(root, ".mim", "configs", "_base_", '
            '"glnet.py"))); '
            'print(sorted(m for m in ("mmdet", "mmseg", "mmpretrain") '
            'if m in sys.modules))')],
        capture_output=True, text=True, cwd=str(tmp_path), env=_pip_env())
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split('\n')[:4] == [
        osp.join(purelib, 'glnet_mm', '__init__.py'), 'True', 'True', '[]']

