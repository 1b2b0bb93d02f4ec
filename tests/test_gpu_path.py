"""The GPU path on a CPU machine: the offline bundle (.dev_scripts/make_bundle.sh),
the install from it with no network on top of an existing torch
(.dev_scripts/setup_env.sh --offline), the dry run of .dev_scripts/gpu_check.sh, and the
pieces of setup_env.sh's CUDA choice that can be checked without a GPU.

The bundle is built for this machine's Python (its download step uses the
network); everything after it runs with pip --no-index and an unreachable
proxy, so a download attempt fails the test.
"""
import importlib.metadata as metadata
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
from packaging.requirements import Requirement

import glnet_mm

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEV = osp.join(REPO, '.dev_scripts')
# any connection attempt fails at once
NO_NETWORK = {name: 'http://127.0.0.1:9' for name in (
    'http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY')}


def run(cmd, env=None, cwd=REPO, timeout=900):
    """Run a command; its output comes back whatever the exit status."""
    full_env = dict(os.environ)
    full_env.pop('PYTHONPATH', None)
    full_env.update(env or {})
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def explain(out):
    return f'exit {out.returncode}\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}'


# --------------------------------------------------------------- fixtures ---
@pytest.fixture(scope='module')
def bundle(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp('bundle') / 'b'
    out = run(['bash', osp.join(DEV, 'make_bundle.sh'), str(out_dir)],
              env=dict(PYTHON=sys.executable))
    assert out.returncode == 0, explain(out)
    return out_dir


def _normal(name):
    return re.sub(r'[-_.]+', '-', name).lower()


@pytest.fixture(scope='module')
def torch_python(tmp_path_factory):
    """A Python that has torch, torchvision and what they need (numpy and
    Pillow among them: torchvision imports both), those of the project venv
    linked, and nothing else: the "GPU box" of the offline install."""
    root = tmp_path_factory.mktemp('torch_python')
    farm = root / 'site'
    farm.mkdir()
    todo, seen = ['torch', 'torchvision'], set()
    while todo:
        name = _normal(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for req in dist.requires or []:
            req = Requirement(req)
            if req.marker is None or req.marker.evaluate({'extra': ''}):
                todo.append(req.name)
        site = str(dist.locate_file(''))
        for entry in {str(f).split('/')[0] for f in dist.files or []}:
            if entry.startswith('..') or entry == '__pycache__':
                continue
            link = farm / entry
            if not link.exists():
                link.symlink_to(osp.join(site, entry))
    assert {'torch', 'torchvision'} <= seen
    base = root / 'base'
    out = run([sys.executable, '-m', 'venv', '--without-pip', str(base)])
    assert out.returncode == 0, explain(out)
    # the base interpreter of this venv, with the farm as its site folder
    site = run([str(base / 'bin' / 'python'), '-c',
                'import site; print(site.getsitepackages()[0])'])
    with open(osp.join(site.stdout.strip(), 'torch_farm.pth'), 'w') as f:
        f.write(str(farm) + '\n')
    return str(base / 'bin' / 'python')


@pytest.fixture(scope='module')
def offline_venv(bundle, torch_python, tmp_path_factory):
    """`setup_env.sh --offline` into a fresh venv, mmcv without ops."""
    root = tmp_path_factory.mktemp('offline')
    venv = root / 'venv'
    env = dict(NO_NETWORK, PYTHON=torch_python, GLNET_MM_VENV=str(venv),
               GLNET_MM_CACHE=str(root / 'cache'), GLNET_MM_MMCV_OPS='none')
    out = run(['bash', osp.join(DEV, 'setup_env.sh'), '--offline',
               str(bundle)], env=env)
    return venv, out, env


# ------------------------------------------------------------------ tests ---
def test_bundle_contents(bundle):
    names = sorted(os.listdir(bundle))
    wheels = [n for n in names if n.endswith('.whl')]
    # torch, torchvision and CUDA libraries are the target's own
    assert not [n for n in wheels
                if re.match(r'(torch|torchvision|nvidia_|triton)-', n)]
    for stack in ('mmengine-0.10.7', 'mmdet-3.3.0', 'mmsegmentation-1.2.2',
                  'mmpretrain-1.2.0', 'openmim-0.3.9', 'numpy-2.4.6',
                  'opencv_python_headless-4.10.0.84',
                  f'glnet_mm-{glnet_mm.__version__}'):
        assert any(n.startswith(stack + '-') for n in wheels), stack
    assert not any(n.startswith('opencv_python-') for n in wheels)
    # the test-only requirements stay out
    assert not any(n.startswith(('pytest-', 'omegaconf-')) for n in wheels)
    # requirements.txt pins exactly the bundled wheels
    lock = [line for line in (bundle / 'requirements.txt').read_text()
            .splitlines() if line and not line.startswith('#')]
    assert len(lock) == len(wheels) - 1  # all but the project's wheel
    for line in lock:
        name, version = line.split('==')
        assert any(_normal(w.split('-')[0]) == name and
                   w.split('-')[1] == version for w in wheels), line
    # the mmcv sdist carries the project's patch
    with tarfile.open(bundle / 'mmcv-2.1.0.tar.gz') as tar:
        setup_py = tar.extractfile('mmcv-2.1.0/setup.py').read().decode()
    assert setup_py.count("['-std=c++20']") == 2
    assert "['-std=c++17']" not in setup_py
    manifest = (bundle / 'BUNDLE.md').read_text()
    size_mb = int(re.search(r'(\d+) MB in all', manifest).group(1))
    total = sum(osp.getsize(bundle / n) for n in names
                if n.endswith(('.whl', '.tar.gz')))
    assert size_mb == total // 10**6
    print(f'bundle: {size_mb} MB, {len(wheels)} wheels')


def test_offline_install_imports_the_stack(offline_venv, torch_python):
    venv, out, env = offline_venv
    assert out.returncode == 0, explain(out)
    assert 'no network' in out.stdout
    python = str(venv / 'bin' / 'python')
    check = run([python, '-c', (
        'import json, mmengine, mmcv, mmdet, mmseg, mmpretrain, glnet_mm, '
        'numpy, torch, cv2, importlib.util as u; print(json.dumps(dict('
        'torch=torch.__file__, numpy_version=numpy.__version__, '
        'mmdet=mmdet.__file__, '
        'mmcv=mmcv.__version__, ext=u.find_spec("mmcv._ext") is not None, '
        'cv2=cv2.__file__)))')], cwd=str(venv))
    assert check.returncode == 0, explain(check)
    paths = json.loads(check.stdout.strip().splitlines()[-1])
    torch_dir = run([torch_python, '-c', 'import importlib.util as u; '
                     'print(u.find_spec("torch").origin)'])
    assert paths['torch'] == torch_dir.stdout.strip()  # reused, not installed
    for key in ('mmdet', 'cv2'):  # from the bundle, into the venv
        assert paths[key].startswith(str(venv)), (key, paths[key])
    # numpy: the pinned version, the box's own when it is that version
    assert paths['numpy_version'] == '2.4.6', paths
    assert paths['mmcv'] == '2.1.0' and not paths['ext']  # mmcv-lite


def test_bundled_project_wheel_installs(offline_venv, bundle, tmp_path):
    """The bundle's glnet_mm wheel installs offline and imports."""
    venv, _, env = offline_venv
    python = str(venv / 'bin' / 'python')
    target = tmp_path / 'target'
    out = run([python, '-m', 'pip', 'install', '-q', '--no-index',
               '--find-links', str(bundle), '--no-deps', '--target',
               str(target), 'glnet_mm'], env=NO_NETWORK)
    assert out.returncode == 0, explain(out)
    where = run([python, '-c', 'import glnet_mm; print(glnet_mm.__file__)'],
                cwd=str(tmp_path), env=dict(PYTHONPATH=str(target)))
    assert where.returncode == 0, explain(where)
    assert where.stdout.strip() == str(target / 'glnet_mm' / '__init__.py')


def _fake_nvcc(home, release):
    """A stand-in CUDA toolkit: an nvcc that only tells its version, and a
    header where setup_env.sh looks for one."""
    (home / 'bin').mkdir(parents=True)
    (home / 'include').mkdir()
    (home / 'include' / 'cuda_runtime.h').write_text('')
    nvcc = home / 'bin' / 'nvcc'
    nvcc.write_text('#!/bin/sh\necho "Cuda compilation tools, release '
                    f'{release}, V{release}.0"\n')
    nvcc.chmod(0o755)
    return str(home / 'bin')


@pytest.mark.parametrize('nvcc', [None, '12.4', 'same'])
def test_setup_cuda_choice_without_gpu(offline_venv, bundle, tmp_path, nvcc):
    """GLNET_MM_MMCV_OPS=cuda on this GPU-less machine, before anything is
    built: no compiler -> what to install; another CUDA major -> refused;
    a matching compiler -> TORCH_CUDA_ARCH_LIST is asked for."""
    venv, _, env = offline_venv
    torch_cuda = run([str(venv / 'bin' / 'python'), '-c',
                      'import torch; print(torch.version.cuda or "")'])
    torch_cuda = torch_cuda.stdout.strip()
    if not torch_cuda:
        pytest.skip('this torch is a CPU build')
    # PATH without any nvcc, CUDA_HOME unset
    path = [d for d in os.environ['PATH'].split(':')
            if d and not osp.exists(osp.join(d, 'nvcc'))]
    if nvcc is not None:
        release = torch_cuda if nvcc == 'same' else nvcc
        path.insert(0, _fake_nvcc(tmp_path / 'cuda', release))
    env = dict(env, GLNET_MM_MMCV_OPS='cuda', PATH=':'.join(path),
               CUDA_HOME='')
    env.pop('TORCH_CUDA_ARCH_LIST', None)
    out = run(['bash', osp.join(DEV, 'setup_env.sh'), '--offline',
               str(bundle)], env=env)
    assert out.returncode != 0, explain(out)
    if nvcc is None:
        assert 'no CUDA' in out.stderr and 'compiler was found' in out.stderr
        assert f"cuda-toolkit-{torch_cuda.replace('.', '-')}" in out.stderr
        assert 'GLNET_MM_MMCV_OPS=cpu' in out.stderr
    elif nvcc == '12.4' and not torch_cuda.startswith('12.'):
        assert 'differ in their CUDA major version' in out.stderr
    else:
        assert 'set TORCH_CUDA_ARCH_LIST' in out.stderr
    # nothing was built or cached
    cache = env['GLNET_MM_CACHE']
    assert not [d for d in os.listdir(cache) if 'cuda' in d] \
        if osp.isdir(cache) else True


def test_gpu_check_reports_a_failed_install(torch_python, tmp_path):
    """A bundle that setup_env.sh refuses: step 1 fails, every later step is
    reported as skipped with the reason, and the report is still written."""
    bundle = tmp_path / 'bundle'
    bundle.mkdir()
    (bundle / 'requirements.txt').write_text('')  # but no mmcv sdist
    out_dir = tmp_path / 'report'
    out = run(['bash', osp.join(DEV, 'gpu_check.sh'), str(out_dir),
               '--bundle', str(bundle), '--dry-run'],
              env=dict(NO_NETWORK, PYTHON=torch_python,
                       GLNET_MM_CHECK_WORK=str(tmp_path / 'work')))
    assert out.returncode == 0, explain(out)
    results = json.loads((out_dir / 'results.json').read_text())
    steps = {s['step']: s for s in results['steps']}
    assert steps.pop('install')['status'] == 'failed'
    assert 'no mmcv-2.1.0.tar.gz' in (out_dir / 'gpu_check.log').read_text()
    assert list(steps) == ['parity', 'throughput', 'mmcv-build', 'seg-toy',
                           'det-toy', 'det-fps']
    for step in steps.values():
        assert step['status'] == 'skipped', step
        assert 'install step failed' in step['note'] or \
            'no compiled ops' in step['note'], step
    assert '| det-fps | skipped |' in (out_dir / 'results.md').read_text()


# ------------------------------------------------------- bad input, cheap ---
def test_make_bundle_refuses_bad_input(tmp_path):
    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'notes.txt').write_text('keep me')
    script = osp.join(DEV, 'make_bundle.sh')
    out = run(['bash', script, str(mine)], env=dict(PYTHON=sys.executable))
    assert out.returncode != 0 and 'not empty' in out.stderr
    assert (mine / 'notes.txt').read_text() == 'keep me'
    out = run(['bash', script, '--python', 'py3', str(tmp_path / 'x')])
    assert out.returncode != 0 and "give a version like 3.12" in out.stderr
    out = run(['bash', script, '--have', str(tmp_path / 'nope'),
               str(tmp_path / 'x')])
    assert out.returncode != 0 and 'no such file' in out.stderr
    out = run(['bash', script])
    assert out.returncode != 0 and 'OUT_DIR is missing' in out.stderr


def test_setup_env_refuses_bad_input(tmp_path):
    script = osp.join(DEV, 'setup_env.sh')
    env = dict(GLNET_MM_VENV=str(tmp_path / 'venv'))
    out = run(['bash', script, '--offline', str(tmp_path / 'nope')], env=env)
    assert out.returncode != 0 and 'no such folder' in out.stderr
    out = run(['bash', script, '--offline', str(tmp_path)], env=env)
    assert out.returncode != 0 and 'make_bundle.sh' in out.stderr
    out = run(['bash', script], env=dict(env, GLNET_MM_MMCV_OPS='gpu'))
    assert out.returncode != 0 and 'use auto, cpu, cuda or none' in out.stderr
    out = run(['bash', script, '--bogus'], env=env)
    assert out.returncode != 0 and 'unknown option' in out.stderr
    # --system-torch with an interpreter that has no torch
    out = run(['bash', script, '--system-torch'],
              env=dict(env, PYTHON=shutil.which('python3') or 'python3'))
    if out.returncode == 0:  # a python3 with torch and torchvision: fine
        pytest.skip('python3 on PATH has torch')
    assert 'cannot import torch and torchvision' in out.stderr
    assert not (tmp_path / 'venv').exists()


def test_patch_mmcv_is_idempotent_and_checked(tmp_path, bundle):
    with tarfile.open(bundle / 'mmcv-2.1.0.tar.gz') as tar:
        tar.extractall(tmp_path, filter='data')
    src = tmp_path / 'mmcv-2.1.0'
    before = (src / 'setup.py').read_text()
    out = run(['bash', osp.join(DEV, 'patch_mmcv.sh'), str(src)])
    assert out.returncode == 0, explain(out)
    assert (src / 'setup.py').read_text() == before  # already patched
    # an upstream change that the patch no longer fits is an error
    (src / 'setup.py').write_text(before.replace("['-std=c++20']", "[]", 1))
    out = run(['bash', osp.join(DEV, 'patch_mmcv.sh'), str(src)])
    assert out.returncode != 0 and 'should touch 2 lines' in out.stderr
    out = run(['bash', osp.join(DEV, 'patch_mmcv.sh'), str(tmp_path)])
    assert out.returncode != 0
    assert 'not an mmcv 2.1.0 source tree' in out.stderr


def test_check_mmcv_ops_cpu():
    """The op check setup_env.sh runs after a build, on the CPU: mmcv's
    RoIAlign and NMS against torchvision's."""
    pytest.importorskip('mmcv._ext')
    out = run([sys.executable, osp.join(DEV, 'check_mmcv_ops.py'),
               '--device', 'cpu'])
    assert out.returncode == 0, explain(out)
    result = json.loads(out.stdout)
    assert result['roi_align_max_abs_diff'] <= 1e-4
    assert result['nms_same_indices'] and 0 < result['nms_kept'] < 300


# ------------------------------------- gpu_check.sh --dry-run (last) ---
@pytest.fixture(scope='module')
def dry_run(bundle, offline_venv, tmp_path_factory):
    """`gpu_check.sh --dry-run` with the bundle, on the torch-only Python.

    Its work folder is that of `offline_venv`: its install step is the same
    setup_env.sh call, a second run with the same bundle and settings, which
    must reuse that venv (the install itself is tested above). Its
    mmcv-build step turns that venv's mmcv-lite into mmcv with CPU ops, so
    these tests come last."""
    venv, _, env = offline_venv
    out_dir = tmp_path_factory.mktemp('gpu_check') / 'report'
    out = run(['bash', osp.join(DEV, 'gpu_check.sh'), str(out_dir),
               '--bundle', str(bundle), '--dry-run'],
              env=dict(NO_NETWORK, PYTHON=env['PYTHON'],
                       GLNET_MM_CHECK_WORK=str(venv.parent)))
    return out, out_dir, env['PYTHON']


def test_gpu_check_dry_run(dry_run):
    """`gpu_check.sh --dry-run`: every step that needs no GPU, reported in
    JSON and Markdown."""
    out, out_dir, torch_python = dry_run
    assert out.returncode == 0, explain(out)
    assert sorted(os.listdir(out_dir)) == ['gpu_check.log', 'results.json',
                                           'results.md']
    results = json.loads((out_dir / 'results.json').read_text())
    assert results['dry_run'] is True
    assert results['wall_s'] >= results['steps_s'] > 0
    steps = {s['step']: s for s in results['steps']}
    order = [s['step'] for s in results['steps']]
    assert order == ['install', 'parity', 'throughput', 'mmcv-build',
                     'seg-toy', 'det-toy', 'det-fps']
    for name in ('install', 'parity', 'mmcv-build', 'seg-toy', 'det-toy'):
        assert steps[name]['status'] == 'ok', steps[name]
        assert steps[name]['seconds'] >= 0
    assert 'CPU ops' in steps['mmcv-build']['note']
    # step 1 ran setup_env.sh as offline_venv did: the venv is reused
    install = (out_dir / 'gpu_check.log').read_text().split(
        '== step install:')[1]  # its command line, then its output
    assert 'reusing' in install and '1/4' not in install, install
    parity = steps['parity']['data']['parity.json']
    assert set(parity['models']) == {'glnet-stl', 'glnet-4g'}
    for entry in parity['models'].values():
        assert len(entry['fp32']) == 4 and max(entry['fp32']) <= 1e-4
        assert entry['bf16']['finite']
    seg = steps['seg-toy']['data']['seg.json']['models']
    assert list(seg) == ['glnet-toy', 'swin-t']  # a dry run's models
    det = steps['det-toy']['data']['det.json']['models']
    assert set(det) == {'mask-rcnn-glnet-toy'}
    for run_ in list(seg.values()) + list(det.values()):
        assert run_['iters'] == 3 and run_['finite'] and run_['s_per_iter'] > 0
    markdown = (out_dir / 'results.md').read_text()
    assert '# GPU check (dry run on the CPU)' in markdown
    for name in order:
        assert f'| {name} |' in markdown
    assert '## seg-toy: seg.json' in markdown
    # the same folder is not written again without --force
    again = run(['bash', osp.join(DEV, 'gpu_check.sh'), str(out_dir),
                 '--dry-run'], env=dict(PYTHON=torch_python))
    assert again.returncode != 0 and 'not empty' in again.stderr


def test_gpu_check_dry_run_benchmarks(dry_run):
    """Steps 3 and 7 call tools/analysis_tools/benchmark.py, the project's benchmark tool."""
    out, out_dir, _ = dry_run
    assert out.returncode == 0, explain(out)
    results = json.loads((out_dir / 'results.json').read_text())
    steps = {s['step']: s for s in results['steps']}
    assert steps['throughput']['status'] == 'ok', steps['throughput']
    # backbone fp32, classifier fp32 with channels_last; in a dry run
    # GLNet-STL and the baselines (a kind of model each)
    assert len(steps['throughput']['data']) == 2
    for data in steps['throughput']['data'].values():
        assert [r['model'] for r in data['rows']] == [
            'glnet-stl', 'swin-t', 'convnext-t']
    assert steps['det-fps']['status'] == 'ok', steps['det-fps']
    fps, = steps['det-fps']['data'].values()
    assert [r['model'] for r in fps['rows']] == ['glnet-stl', 'swin-t']
