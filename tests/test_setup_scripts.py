"""The setup's mmcv step on stand-ins: what a fresh machine goes through.

The real compile takes minutes, so these tests give .dev_scripts/mmcv_wheel.py (the
cache, check and build logic of .dev_scripts/setup_env.sh) small stand-in sdists
that build in seconds: one whose wheel has compiled ops, one that silently
builds none (mmcv's behaviour when it cannot import torch), one whose
compile fails half way. .dev_scripts/patch_mmcv.sh runs on a stand-in source tree
shaped like mmcv 2.1.0's. And no shell script of the project has a pipeline
that pipefail turns into a false failure.
"""
import os
import os.path as osp
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MMCV_WHEEL = REPO / '.dev_scripts' / 'mmcv_wheel.py'
EXT = 'mmcv/_ext.cpython-311-x86_64-linux-gnu.so'

# The stand-in mmcv: its "compile" writes build/objects.o once (counted in
# $STANDIN_LOG) and can fail after it ($STANDIN_FAIL); like mmcv's setup.py,
# it adds the compiled ops only when MMCV_WITH_OPS is not 0.
STANDIN_SETUP = '''
import os
from pathlib import Path
from setuptools import setup
from setuptools.command.build_py import build_py


class Build(build_py):

    def run(self):
        super().run()
        objects = Path('build/objects.o')
        if not objects.exists():
            with open(os.environ['STANDIN_LOG'], 'a') as f:
                f.write('compiled\\n')
            objects.parent.mkdir(parents=True, exist_ok=True)
            objects.write_text('object code')
        if os.environ.get('STANDIN_FAIL'):
            raise SystemExit('stand-in compiler error')
        if os.environ.get('MMCV_WITH_OPS', '1') != '0':
            ext = Path(self.build_lib) / '{ext}'
            ext.write_bytes(b'stand-in shared object')


setup(name='mmcv', version='2.1.0', packages=['mmcv'],
      cmdclass={{'build_py': Build}})
'''.format(ext=EXT)


def make_wheel(path, names):
    with zipfile.ZipFile(path, 'w') as zf:
        for name in names:
            zf.writestr(name, b'x')
    return path


def make_sdist(folder):
    src = folder / 'mmcv-2.1.0'
    (src / 'mmcv').mkdir(parents=True)
    (src / 'mmcv' / '__init__.py').write_text("__version__ = '2.1.0'\n")
    (src / 'setup.py').write_text(STANDIN_SETUP)
    sdist = folder / 'mmcv-2.1.0.tar.gz'
    with tarfile.open(sdist, 'w:gz') as tf:
        tf.add(src, arcname='mmcv-2.1.0')
    return sdist


@pytest.fixture
def standin(tmp_path):
    """A stand-in sdist, an empty cache folder and a runner of
    ``mmcv_wheel.py ensure`` that counts the compiles."""
    sdist = make_sdist(tmp_path / 'sdist')
    cache = tmp_path / 'cache' / 'mmcv-2.1.0-torchX-cp311-x86_64-cpu'
    log = tmp_path / 'compiles.log'

    def ensure(ops='cpu', **env):
        full = dict(os.environ, STANDIN_LOG=str(log), **env)
        return subprocess.run(
            [sys.executable, str(MMCV_WHEEL), 'ensure', '--cache-dir',
             str(cache), '--ops', ops, '--sdist', str(sdist)],
            env=full, capture_output=True, text=True)

    def compiles():
        return log.read_text().count('compiled') if log.exists() else 0

    ensure.cache, ensure.build = cache, Path(str(cache) + '.build')
    ensure.compiles = compiles
    return ensure


def check(wheel, flag):
    return subprocess.run(
        [sys.executable, str(MMCV_WHEEL), 'check', str(wheel), flag],
        capture_output=True, text=True)


def test_check_reads_the_wheel_without_a_pipeline(tmp_path):
    # A wheel big enough that a lister piped into `grep -q` would be cut off
    # (the fresh-machine failure): the check must still find the ops.
    names = [f'mmcv/ops/file{i:05d}.py' for i in range(20000)] + [EXT]
    ops = make_wheel(tmp_path / 'ops.whl', names)
    lite = make_wheel(tmp_path / 'lite.whl', ['mmcv/__init__.py'])
    other = make_wheel(tmp_path / 'other.whl', ['numpy/__init__.py'])
    broken = tmp_path / 'broken.whl'
    broken.write_bytes(b'not a zip')
    assert check(ops, '--ops').returncode == 0
    assert check(lite, '--no-ops').returncode == 0
    no_ops = check(lite, '--ops')
    assert no_ops.returncode == 1 and 'no compiled ops' in no_ops.stderr
    unwanted = check(ops, '--no-ops')
    assert unwanted.returncode == 1 and 'where none were wanted' in \
        unwanted.stderr
    assert 'holds no mmcv package' in check(other, '--ops').stderr
    assert 'not a readable wheel' in check(broken, '--ops').stderr


def test_a_good_build_is_cached_and_reused(standin):
    first = standin()
    assert first.returncode == 0, first.stderr
    wheel = Path(first.stdout.strip())
    assert wheel.parent == standin.cache
    assert EXT in zipfile.ZipFile(wheel).namelist()
    assert not standin.build.exists()
    second = standin()
    assert second.returncode == 0 and second.stdout == first.stdout
    assert standin.compiles() == 1


def test_lite_build(standin):
    result = standin(ops='none', MMCV_WITH_OPS='0')
    assert result.returncode == 0, result.stderr
    names = zipfile.ZipFile(result.stdout.strip()).namelist()
    assert 'mmcv/__init__.py' in names and EXT not in names


def test_a_build_without_ops_is_removed_with_what_to_do(standin):
    result = standin(MMCV_WITH_OPS='0')
    assert result.returncode == 1
    assert 'no compiled ops' in result.stderr
    assert 'import torch' in result.stderr   # the usual cause, named
    assert not list(standin.cache.glob('*.whl'))
    assert not standin.build.exists()
    # Nothing was kept that would pass for a good wheel: the next run
    # builds again, and keeps the good wheel.
    assert standin().returncode == 0
    assert standin.compiles() == 2


def test_a_failed_compile_resumes(standin):
    failed = standin(STANDIN_FAIL='1')
    assert failed.returncode == 1
    assert 'the mmcv build failed' in failed.stderr
    assert 'stand-in compiler error' in failed.stderr   # the log's tail
    assert str(standin.build / 'build.log') in failed.stderr
    assert (standin.build / 'src' / 'build' / 'objects.o').exists()
    assert standin.compiles() == 1
    resumed = standin()
    assert resumed.returncode == 0, resumed.stderr
    assert 'resuming the build' in resumed.stderr
    assert standin.compiles() == 1   # the objects were not compiled again
    assert not standin.build.exists()


def test_a_wheel_left_by_an_interrupted_run(standin, tmp_path):
    (standin.build / 'wheel').mkdir(parents=True)
    make_wheel(standin.build / 'wheel' / 'mmcv-2.1.0-py3-none-any.whl',
               ['mmcv/__init__.py', EXT])
    adopted = standin()
    assert adopted.returncode == 0
    assert 'adopting' in adopted.stderr and standin.compiles() == 0
    assert Path(adopted.stdout.strip()).parent == standin.cache


def test_a_bad_wheel_left_or_cached_is_replaced(standin):
    (standin.build / 'wheel').mkdir(parents=True)
    make_wheel(standin.build / 'wheel' / 'mmcv-2.1.0-py3-none-any.whl',
               ['mmcv/__init__.py'])
    result = standin()
    assert result.returncode == 0
    assert 'removed a wheel left by an earlier run' in result.stderr
    assert standin.compiles() == 1
    # A cached wheel that no longer reads (a truncated copy) is rebuilt.
    wheel = Path(result.stdout.strip())
    wheel.write_bytes(wheel.read_bytes()[:100])
    again = standin()
    assert again.returncode == 0 and 'unusable' in again.stderr
    assert standin.compiles() == 2
    assert zipfile.ZipFile(again.stdout.strip()).testzip() is None


def test_patch_mmcv_on_a_standin_tree(tmp_path):
    src = tmp_path / 'mmcv-2.1.0'
    pytorch = src / 'mmcv' / 'ops' / 'csrc' / 'pytorch'
    (pytorch / 'cpu').mkdir(parents=True)
    (src / 'mmcv' / 'version.py').write_text("__version__ = '2.1.0'\n")
    (src / 'setup.py').write_text(
        "cxx = ['-std=c++17']\nnvcc = ['-std=c++17']\n")
    fronts = [f'op{i:02d}.cpp' for i in range(56)]
    for name in fronts + ['pybind.cpp', 'cpu/op00_cpu.cpp']:
        (pytorch / name).write_text(f'// {name}\n')
    for _ in range(2):   # idempotent
        subprocess.run(['bash', str(REPO / '.dev_scripts' / 'patch_mmcv.sh'),
                        str(src)], check=True)
    assert (src / 'setup.py').read_text().count("['-std=c++20']") == 2
    assert sorted(p.name for p in pytorch.glob('*.cpp')) == [
        'pybind.cpp', 'unity.cpp']
    included = re.findall(r'#include "unity/(\S+)"',
                          (pytorch / 'unity.cpp').read_text())
    assert included == fronts
    assert sorted(p.name for p in (pytorch / 'unity').iterdir()) == fronts
    assert (pytorch / 'cpu' / 'op00_cpu.cpp').exists()   # kernels stay
    other = tmp_path / 'other'
    other.mkdir()
    refused = subprocess.run(['bash', str(REPO / '.dev_scripts' / 'patch_mmcv.sh'),
                              str(other)], capture_output=True, text=True)
    assert refused.returncode == 1 and 'not an mmcv 2.1.0 source tree' in \
        refused.stderr


def shell_scripts():
    scripts = (sorted((REPO / 'tools').glob('*.sh'))
               + sorted((REPO / '.dev_scripts').glob('*.sh'))
               + [REPO / '.ci' / 'run'])
    return [p for p in scripts if p.exists()]


# A pipe into a reader that may stop before its writer is done.
EARLY_EXIT = re.compile(
    r'\|\s*(head\b|grep\s+(-\w*[qlm]|--quiet|--max-count|--files-with))')


@pytest.mark.parametrize('script', shell_scripts(),
                         ids=lambda p: osp.relpath(p, REPO))
def test_no_pipeline_that_pipefail_fails_falsely(script):
    """Under ``set -o pipefail`` a pipeline fails when its writer dies of
    SIGPIPE because the reader (``head``, ``grep -q``) stopped early."""
    code = [line for line in script.read_text().splitlines()
            if not line.lstrip().startswith('#')]
    found = [line.strip() for line in code if EARLY_EXIT.search(line)]
    assert not found, f'{script.name}: {found}'


def test_the_pattern_finds_what_it_should():
    assert EARLY_EXIT.search('python -m zipfile -l "$w" | grep -q mmcv/_ext')
    assert EARLY_EXIT.search('ls "$d" | head -n 5')
    assert EARLY_EXIT.search('cmd | grep -m1 x')
    assert not EARLY_EXIT.search('grep -q x file || true')
    assert not EARLY_EXIT.search('du -cb f | tail -n1')
