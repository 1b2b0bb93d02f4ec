"""The environments of noxfile.py: mmcv's build cache and patch on
stand-ins, the stacks as the README states them, the offline bundle, and the
GPU check's dry run from it, offline, on a Python that has only torch. The
last two build environments of their own (``stacks`` marker): they run with
the stacks' checks in ``make test-stacks``, not in ``make test``."""
import importlib.metadata as metadata
import json
import os
import re
import runpy
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
DEV = REPO / '.dev_scripts'
NO_NETWORK = {name: 'http://127.0.0.1:9' for name in (  # fails at once
    'http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY')}
EXT = 'mmcv/_ext.cpython-311-x86_64-linux-gnu.so'
# A stand-in mmcv sdist: its "compile" writes build/objects.o once (counted in
# $STANDIN_LOG) and fails after it with $STANDIN_FAIL; like mmcv's setup.py it
# adds compiled ops unless MMCV_WITH_OPS=0.
STANDIN_SETUP = f'''
import os
from pathlib import Path
from setuptools import setup
from setuptools.command.build_py import build_py

class Build(build_py):
    def run(self):
        super().run()
        objects = Path('build/objects.o')
        if not objects.exists():
            Path(os.environ['STANDIN_LOG']).open('a').write('compiled\\n')
            objects.parent.mkdir(parents=True, exist_ok=True)
            objects.write_text('object code')
        if os.environ.get('STANDIN_FAIL'):
            raise SystemExit('stand-in compiler error')
        if os.environ.get('MMCV_WITH_OPS', '1') != '0':
            (Path(self.build_lib) / '{EXT}').write_bytes(b'.so')

setup(name='mmcv', version='2.1.0', packages=['mmcv'],
      cmdclass={{'build_py': Build}})
'''


def run(cmd, timeout=1800, **env):
    full = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    return subprocess.run([str(c) for c in cmd], cwd=REPO, timeout=timeout,
                          env=dict(full, **env), capture_output=True,
                          text=True)


def load_noxfile():
    return SimpleNamespace(**runpy.run_path(str(REPO / 'noxfile.py')))


def explain(out):
    return f'exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}'


@pytest.fixture
def build(tmp_path):
    """``mmcv_wheel.py`` on a stand-in sdist, counting the compiles."""
    src = tmp_path / 'mmcv-2.1.0'
    (src / 'mmcv').mkdir(parents=True)
    (src / 'mmcv' / '__init__.py').write_text('')
    (src / 'setup.py').write_text(STANDIN_SETUP)
    sdist = tmp_path / 'mmcv-2.1.0.tar.gz'
    with tarfile.open(sdist, 'w:gz') as tf:
        tf.add(src, arcname=src.name)
    log, cache = tmp_path / 'compiles.log', tmp_path / 'cache' / 'mmcv-cpu'

    def ensure(ops='cpu', **env):
        env = dict(dict(MMCV_WITH_OPS=str(int(ops != 'none'))), **env)
        out = run([sys.executable, DEV / 'mmcv_wheel.py', cache, '--ops', ops,
                   '--sdist', sdist, '--patch', '/dev/null'],
                  STANDIN_LOG=str(log), **env)
        out.compiles = log.exists() and log.read_text().count('compiled')
        return out
    ensure.cache = cache
    return ensure


def test_the_mmcv_wheel_is_built_once_and_resumed(build):
    out = build(STANDIN_FAIL='1')  # a compile that fails half way
    assert out.returncode == 1 and 'stand-in compiler error' in out.stderr
    assert 'resumes from the objects' in out.stderr and out.compiles == 1
    out = build()  # resumes: the objects are not compiled again
    assert out.returncode == 0, explain(out)
    assert 'resuming the build' in out.stderr and out.compiles == 1
    wheel = Path(out.stdout.strip())
    assert wheel.parent == build.cache and wheel.suffix == '.whl'
    assert build().stdout == out.stdout and build().compiles == 1  # cached
    wheel.write_bytes(b'not a zip')  # a damaged cached wheel is replaced
    out = build()
    assert 'not a readable wheel' in out.stderr and out.compiles == 2


def test_a_build_without_ops_is_refused_and_lite_is_not(build):
    out = build(MMCV_WITH_OPS='0')  # as mmcv does when it misses torch
    assert out.returncode == 1 and 'holds no compiled ops' in out.stderr
    assert not build.cache.exists()  # nothing kept that would be reused
    lite = build('none')
    assert lite.returncode == 0 and lite.stdout.strip().endswith('.whl')


def test_patch_mmcv_on_a_standin_tree(tmp_path):
    src = tmp_path / 'mmcv-2.1.0'
    pytorch = src / 'mmcv' / 'ops' / 'csrc' / 'pytorch'
    (pytorch / 'cpu').mkdir(parents=True)
    (src / 'mmcv' / 'version.py').write_text("__version__ = '2.1.0'\n")
    (src / 'setup.py').write_text("cxx = ['-std=c++17']\n"
                                  "nvcc = ['-std=c++17']\n")
    fronts = [f'op{i:02d}.cpp' for i in range(56)]
    for name in fronts + ['pybind.cpp', 'cpu/op00_cpu.cpp']:
        (pytorch / name).write_text(f'// {name}\n')
    for _ in range(2):  # idempotent
        assert run(['bash', DEV / 'patch_mmcv.sh', src]).returncode == 0
    assert (src / 'setup.py').read_text().count("['-std=c++20']") == 2
    assert sorted(p.name for p in pytorch.glob('*.cpp')) == [
        'pybind.cpp', 'unity.cpp']
    assert re.findall(r'#include "unity/(\S+)"',
                      (pytorch / 'unity.cpp').read_text()) == fronts
    assert (pytorch / 'cpu' / 'op00_cpu.cpp').exists()  # kernels stay
    refused = run(['bash', DEV / 'patch_mmcv.sh', tmp_path])
    assert refused.returncode == 1
    assert 'not an mmcv 2.1.0 source tree' in refused.stderr


def test_readme_states_the_stacks_as_built():
    """The README's table of stacks: the Python of each nox session, and
    the versions of its constraints file (the one place of them)."""
    noxfile, text = load_noxfile(), (REPO / 'README.md').read_text()
    rows = {c[0]: c for c in ([c.strip() for c in line.split('|')[1:]]
                              for line in text.splitlines()
                              if line.startswith('| '))
            if c[0] in noxfile.STACKS}
    assert set(rows) == set(noxfile.STACKS)
    for name, stack in noxfile.STACKS.items():
        pins = dict(re.findall(r'^([\w.-]+)==(\S+)$', (
            REPO / 'requirements' / f'{name}.txt').read_text(), re.M))
        assert rows[name][1] == stack['python']
        for package in ('torch', 'torchvision', 'numpy', 'mmcv'):
            if package in pins:
                assert pins[package] in text, (name, package)
    assert 'mmcv-lite' in rows['newest'][3]


def test_every_stack_check_exists():
    """Each test a stack selects is collected (a renamed test would
    otherwise fail only on that stack): looked up among the tests this run
    collected, and the files it did not collect in a fresh collection."""
    from conftest import COLLECTED
    noxfile = load_noxfile()
    ids = sorted({c for stack in ('classic', 'newest')
                  for c in noxfile.STACKS[stack]['checks']
                  if not c.startswith('-')})
    here = {node.split('::')[0] for node in COLLECTED}
    missing = [i for i in ids if i.split('::')[0] in here and not any(
        node == i or node.startswith((i + '::', i + '['))
        for node in COLLECTED)]
    assert not missing, missing
    rest = [i for i in ids if i.split('::')[0] not in here]
    if rest:
        out = run([sys.executable, '-m', 'pytest', '--collect-only', '-q',
                   *rest])
        assert out.returncode == 0, explain(out)
        assert 'no tests ran' not in out.stdout and 'ERROR' not in out.stdout


@pytest.fixture(scope='module')
def torch_python(tmp_path_factory):
    """A Python that has torch, torchvision and their dependencies (those
    of this venv, linked) and nothing else: the bare GPU box."""
    root = tmp_path_factory.mktemp('torch_python')
    farm, todo, seen = root / 'site', ['torch', 'torchvision'], set()
    farm.mkdir()
    while todo:
        name = re.sub(r'[-_.]+', '-', todo.pop()).lower()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        todo += [r.name for r in map(Requirement, dist.requires or [])
                 if r.marker is None or r.marker.evaluate({'extra': ''})]
        for entry in {str(f).split('/')[0] for f in dist.files or []}:
            if not (entry.startswith('..') or (farm / entry).exists()):
                (farm / entry).symlink_to(dist.locate_file(entry))
    out = run([sys.executable, '-m', 'venv', '--without-pip', root / 'base'])
    assert out.returncode == 0, explain(out)
    site = run([root / 'base/bin/python', '-c',
                'import site; print(site.getsitepackages()[0])'])
    Path(site.stdout.strip(), 'farm.pth').write_text(f'{farm}\n')
    return str(root / 'base' / 'bin' / 'python')


@pytest.fixture(scope='module')
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp('bundle') / 'b'
    done = run([sys.executable, '-m', 'nox', '-s', 'bundle', '--', out])
    assert done.returncode == 0, explain(done)
    return out


@pytest.mark.stacks
def test_bundle_holds_the_stack_without_torch(bundle):
    lock = (bundle / 'requirements.txt').read_text()
    names = {line.split('==')[0].lower() for line in lock.split()
             if '==' in line}
    assert {'mmdet', 'mmsegmentation', 'mmpretrain', 'mmengine', 'nox', 'uv',
            'opencv-python-headless', 'pip'} <= names
    assert not [n for n in names if n.startswith(('torch', 'nvidia'))]
    wheels = {p.name.split('-')[0].lower() for p in bundle.glob('*.whl')}
    assert {n.replace('-', '_') for n in names} <= wheels | {'pip'}
    assert (bundle / 'mmcv-2.1.0.tar.gz').is_file()
    assert len(list(bundle.glob('glnet_mm-*.whl'))) == 1
    refused = run([sys.executable, '-m', 'nox', '-s', 'bundle', '--', bundle])
    assert refused.returncode != 0 and 'is not empty' in refused.stdout + \
        refused.stderr  # nothing is overwritten


@pytest.mark.stacks
def test_gpu_check_dry_run_offline_on_a_torch_only_python(
        bundle, torch_python, tmp_path):
    out_dir, work = tmp_path / 'report', tmp_path / 'work'
    done = run([sys.executable, '-m', 'nox', '-s', 'gpu_check', '--',
                out_dir, '--bundle', bundle, '--dry-run'],
               PYTHON=torch_python, GLNET_MM_CHECK_WORK=str(work),
               **NO_NETWORK)
    assert done.returncode == 0, explain(done) + (
        out_dir / 'gpu_check.log').read_text()[-3000:]
    results = json.loads((out_dir / 'results.json').read_text())
    steps = {s['step']: s for s in results['steps']}
    assert list(steps) == ['install', 'parity', 'throughput', 'mmcv-build',
                           'seg-toy', 'det-toy', 'det-fps', 'trt']
    # no GPU, TensorRT or mmdeploy here: trt skipped, saying why, and the
    # check passes
    assert {s['status'] for s in steps.values() if s['step'] != 'trt'} == {
        'ok'}
    trt = steps['trt']
    assert trt['status'] == 'skipped' and 'no CUDA device' in trt['note']
    assert '| trt | skipped |' in (out_dir / 'results.md').read_text()
    trt_models = trt['data']['trt.json']['models']
    assert list(trt_models) == ['mask-rcnn-glnet-toy', 'upernet-glnet-toy']
    assert trt_models['upernet-glnet-toy']['amp_vs_fp32']['label_miou'] > 0
    assert results['dry_run'] and '| det-fps | ok |' in (
        out_dir / 'results.md').read_text()
    parity = steps['parity']['data']['parity.json']['models']['glnet-stl']
    assert parity['fp32'].startswith('not compared')  # CPU against CPU
    assert max(parity['bf16']['rel_err']) < 0.06  # bf16 against fp32
    for data in steps['throughput']['data'].values():  # backbone, classifier
        assert [r['model'] for r in data['rows']] == [
            'glnet-stl', 'swin-t', 'convnext-t']
    assert len(steps['throughput']['data']) == 2
    seg = steps['seg-toy']['data']['seg.json']['models']
    det = steps['det-toy']['data']['det.json']['models']
    assert list(seg) == ['glnet-toy', 'swin-t'] and list(det) == [
        'mask-rcnn-glnet-toy']
    for trained in list(seg.values()) + list(det.values()):
        assert trained['iters'] == 3 and trained['finite']
    fps, = steps['det-fps']['data'].values()
    assert [r['model'] for r in fps['rows']] == ['glnet-stl', 'swin-t']
    venv_torch = run([work / 'venv/bin/python', '-c',
                      'import torch, glnet_mm; print(torch.__file__)'])
    farm_torch = run([torch_python, '-c', 'import torch; print(torch.__file__)'])
    assert venv_torch.stdout == farm_torch.stdout != ''  # its torch, reused
    again = run([sys.executable, '-m', 'nox', '-s', 'gpu_check', '--',
                 out_dir, '--dry-run'], PYTHON=torch_python)
    assert again.returncode != 0 and 'is not empty' in again.stdout + \
        again.stderr  # a report is not overwritten
