"""The project's environments (docs/install.md): nox sessions, uv making
and filling the venvs. ``make setup`` runs ``nox -s setup`` (.venv/), ``make
test-stacks`` ``nox -s classic newest``, ``make bundle`` ``nox -s bundle``;
the GPU check is ``nox -s gpu_check``. Versions: requirements/<stack>.txt;
package names: pyproject.toml's extras. By hand, as no library does it: mmcv
2.1.0 compiled once per torch, Python, machine and ops, cached in
$GLNET_MM_CACHE (.dev_scripts/mmcv_wheel.py); pip's index settings passed to
uv; the machine's own torch kept by a venv's pip (uv ignores a venv's system
packages, uv#7358)."""
import glob
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.etree import ElementTree

import nox

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

nox.options.default_venv_backend = 'uv'
nox.options.sessions = ['setup']
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).resolve().parent
CACHE = Path(os.environ.get('GLNET_MM_CACHE',
                            Path.home() / '.cache' / 'glnet_mm'))
MMCV = '2.1.0'
VENV = Path(os.environ.get('GLNET_MM_VENV', ROOT / '.venv'))  # setup's
# uv: beside nox, else on PATH
UV = next((str(p) for p in [Path(sys.executable).with_name('uv')]
           if p.exists()), 'uv')
# Installed before mmcv's build, which imports them (no build isolation: its
# setup.py must import torch, or it silently builds no ops).
BUILD = ['torch', 'torchvision', 'numpy', 'setuptools', 'wheel', 'ninja',
         'pip']
TORCH = ('torch', 'torchvision', 'triton', 'nvidia-', 'cuda-')
# openmim goes in without its dependencies (its `opendatalab` pulls openxlab,
# which downgrades setuptools and pins old requests/rich; `mim train/test`
# never import it); these are the ones it imports.
MIM = ['click', 'colorama', 'model-index', 'pandas', 'requests', 'rich',
       'tabulate']
# python: X.Y; extras: pyproject.toml's; mmcv: compiled (True), mmcv-lite
# (False), no toolbox (None); more: beside the extras; checks: its tests.
STACKS = {
    'current': dict(python='3.11', mmcv=True, extras=[
        'mmdet', 'mmseg', 'mmpretrain', 'tests', 'export', 'timm']),
    'classic': dict(python='3.8', mmcv=True, extras=[
        'mmdet', 'mmseg', 'mmpretrain', 'tests', 'deploy', 'timm']),
    'newest': dict(python='3.12', mmcv=False, extras=['mmpretrain', 'tests']),
    # a plain timm user's; transformers breaks mmpretrain 1.2.0 (timm.md)
    'timm': dict(python='3.12', mmcv=None, extras=['timm', 'tests'],
                 more=['transformers']),
}
# tests/ ids; the goldens of ../shared/reference through GLNet and mmpretrain,
# and the development stack's outputs (GLNET_MM_REFERENCE_PYTHON runs it)
COMMON_CHECKS = 'test_backbone.py test_checkpoint.py test_compat.py \
test_packaging.py test_official_parity.py::test_golden_stage_outputs \
test_official_parity.py::test_golden_logits_through_mmpretrain \
test_official_parity.py::test_outputs_match_the_development_stack \
test_compile.py::test_no_graph_breaks \
test_registry.py::test_import_has_no_side_effects \
test_registry.py::test_each_registry_builds_glnet[mmpretrain] \
test_registry.py::test_custom_imports_in_a_config \
test_model_zoo.py::test_get_model_by_name_converts_an_official_file \
test_model_zoo.py::test_get_model_from_a_url \
test_classification.py::test_classifier_forward_and_loss \
test_classification.py::test_mim_train_and_test_the_toy_classifier'.split()
STACKS['classic']['checks'] = COMMON_CHECKS + 'test_mmcv_ops.py::\
test_roi_align_and_nms_match_a_reference[cpu] \
test_registry.py::test_each_registry_builds_glnet[mmdet] \
test_registry.py::test_each_registry_builds_glnet[mmseg] \
test_resume.py::test_detection_resumed_by_mim_is_exact \
test_segmentation_toy.py::test_mim_train \
test_segmentation_toy.py::test_mim_test_with_overlays test_deploy.py \
test_timm.py --deselect=tests/test_timm.py::test_transformers_auto_backbone'.split()
STACKS['newest']['checks'] = COMMON_CHECKS + [
    'test_compile.py::test_compiled_matches_eager', '--deselect=tests/'
    'test_checkpoint.py::test_init_cfg_pretrained_through_the_registry']
STACKS['timm']['checks'] = ['test_timm.py', '--deselect=tests/test_timm.py::'
                            'test_toy_mask_rcnn_through_mmpretrain_timm_backbone']
for stack in ('classic', 'newest', 'timm'):
    STACKS[stack]['checks'] = [c if c.startswith('-') else f'tests/{c}'
                               for c in STACKS[stack]['checks']]


# ------------------------------------------------------------------ helpers
def find_python(version, required=True):
    """A Python ``version`` ('3.8'): pythonX.Y on PATH if it runs (a pyenv
    shim may not), else pyenv's newest X.Y.*, else /usr/bin/pythonX.Y; if
    there is none, the bare version (nox then says that it is missing)."""
    pyenv = Path(os.environ.get('PYENV_ROOT', Path.home() / '.pyenv'))
    found = sorted(glob.glob(f'{pyenv}/versions/{version}.*/bin/python'),
                   key=lambda p: [int(n) for n in re.findall(r'\d+', p)])
    for python in [shutil.which(f'python{version}'), *found[::-1],
                   f'/usr/bin/python{version}']:
        if python and subprocess.run(
                [python, '-c', 'import sys; sys.exit(sys.version[:%d] != %r)'
                 % (len(version) + 1, version + '.')],
                capture_output=True).returncode == 0:
            return python
    if not required:
        return version
    raise SystemExit(f'no Python {version}: `pyenv install {version}` or '
                     f'`apt-get install python{version}-dev python{version}-venv`')


def uv_env():
    """pip's index settings for uv, unless UV_* variables give uv its own."""
    if any(k.startswith(('UV_INDEX', 'UV_DEFAULT_INDEX', 'UV_EXTRA',
                         'UV_FIND')) for k in os.environ):
        return {}
    out = subprocess.run([sys.executable, '-m', 'pip', 'config', 'list'],
                         capture_output=True, text=True).stdout
    conf = dict(re.findall(r"^[\w:.]*?([\w-]+)='(.*)'$", out, re.M))
    env = {var: conf[key] for key, var in (
        ('index-url', 'UV_DEFAULT_INDEX'), ('extra-index-url',
                                            'UV_EXTRA_INDEX_URL'),
        ('find-links', 'UV_FIND_LINKS')) if conf.get(key)}
    if env:  # a mirror and the index: the best version found in any
        env['UV_INDEX_STRATEGY'] = 'unsafe-best-match'
    return env


def requirements(*extras):
    """glnet_mm's dependencies and those of ``extras`` (pyproject.toml)."""
    meta = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']
    return meta['dependencies'] + [
        r for e in extras for r in meta['optional-dependencies'][e]]


def constraints(stack, own_torch, folder):
    """requirements/<stack>.txt; less torch and its CUDA libraries where
    the machine's torch is used (written into ``folder``)."""
    path = ROOT / 'requirements' / f'{stack}.txt'
    if not own_torch:
        return str(path)
    kept = [line for line in path.read_text().splitlines()
            if not line.lower().startswith(TORCH)]
    out = Path(folder) / f'{stack}-without-torch.txt'
    out.write_text('\n'.join(kept) + '\n')
    return str(out)


def install(session, python, stack, *args, own_torch=False):
    """Install into ``python``'s venv under the stack's constraints: with uv
    (compiling bytecode as pip does: processes then start without compiling
    their imports), or with the venv's pip where the machine's torch counts."""
    cmd = [python, '-m', 'pip', 'install', '-q'] if own_torch else [
        UV, 'pip', 'install', '-q', '--compile-bytecode', '--python', python]
    session.run(*cmd, '-c', constraints(stack, own_torch,
                                        Path(python).parent.parent),
                *args, external=True, env={} if own_torch else uv_env())


def torch_info(python):
    out = subprocess.run([python, '-c', (
        'import json, sys, torch\n'
        'n = torch.cuda.device_count() if torch.cuda.is_available() else 0\n'
        'print(json.dumps(dict(version=torch.__version__, cuda=torch.version.'
        'cuda, gpus=n, archs=sorted({"%d.%d" % torch.cuda.'
        'get_device_capability(i) for i in range(n)}), tag="cp%d%d" % '
        'sys.version_info[:2])))')], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f'torch does not import in {python}:\n{out.stderr}')
    return json.loads(out.stdout)


def choose_ops(torch, wanted):
    """mmcv's ops (cpu | cuda | none) and their cache tag, decided before
    anything is built; a choice that cannot be built is refused with what
    to do."""
    nvcc = shutil.which('nvcc', path=os.environ.get('PATH', '') + ':' +
                        os.environ.get('CUDA_HOME', '/none') + '/bin')
    gpu = bool(torch['gpus'] and torch['cuda'])
    if wanted == 'auto' and gpu and not nvcc:
        raise SystemExit(
            f'torch sees {torch["gpus"]} GPU(s) but no nvcc is on PATH or in '
            f'$CUDA_HOME/bin: mmcv\'s CUDA ops need the CUDA {torch["cuda"]} '
            'toolkit (module load cuda/X, apt-get install cuda-toolkit-X-Y, '
            'conda install -c nvidia cuda-toolkit), or GLNET_MM_MMCV_OPS=cpu')
    if wanted == 'auto':
        wanted = 'cuda' if gpu else 'cpu'
    if wanted == 'cuda':
        archs = os.environ.get('TORCH_CUDA_ARCH_LIST') or ';'.join(
            torch['archs'])
        if not (torch['cuda'] and nvcc and archs):
            raise SystemExit('GLNET_MM_MMCV_OPS=cuda needs a CUDA build of '
                             'torch, nvcc, and a visible GPU or '
                             'TORCH_CUDA_ARCH_LIST')
        return wanted, archs, f'cuda{torch["cuda"]}-arch' + re.sub(
            r'[ ;]', '_', archs)
    if wanted not in ('cpu', 'none'):
        raise SystemExit(f'GLNET_MM_MMCV_OPS={wanted!r}: use auto, cpu, cuda '
                         'or none')
    return wanted, '', 'cpu' if wanted == 'cpu' else 'lite'


def mmcv_sdist(session, python, folder):
    """mmcv's sdist, downloaded into ``folder`` by ``python``'s pip once."""
    sdist = Path(folder) / f'mmcv-{MMCV}.tar.gz'
    if not sdist.exists():
        session.run(python, '-m', 'pip', 'download', '-q', '--no-deps',
                    '--no-build-isolation', '--no-binary', ':all:',
                    f'mmcv=={MMCV}', '-d', str(folder), external=True)
    return str(sdist)


def mmcv_wheel(session, python, ops=None, sdist=None):
    """The cached mmcv wheel for ``python``'s torch, built once."""
    torch = torch_info(python)
    ops, archs, tag = choose_ops(
        torch, ops or os.environ.get('GLNET_MM_MMCV_OPS', 'auto'))
    cache = CACHE / (f'mmcv-{MMCV}-torch{torch["version"]}-{torch["tag"]}-'
                     f'{os.uname().machine}-{tag}')
    session.log(f'mmcv {MMCV}, {tag} ops: {cache}')
    env = dict(MMCV_WITH_OPS=str(int(ops != 'none')),
               FORCE_CUDA=str(int(ops == 'cuda')),
               MAX_JOBS=os.environ.get('MAX_JOBS', str(os.cpu_count())),
               CPPFLAGS=os.environ.get('CPPFLAGS', '') + ' -g0')
    if archs:
        env['TORCH_CUDA_ARCH_LIST'] = archs
    out = session.run(python, str(ROOT / '.dev_scripts' / 'mmcv_wheel.py'),
                      str(cache), '--ops', ops, '--sdist', sdist or mmcv_sdist(
                          session, python, CACHE), env=env,
                      external=True, silent=True)
    return out.strip().splitlines()[-1]


def fill(session, python, stack, own_torch=False, bundle=None, ops=None,
         editable=True):
    """Everything of ``stack`` into ``python``'s venv: build tools (less
    torch when the machine's is used), mmcv, the toolboxes and test needs,
    openmim, and glnet_mm (editable) unless ``editable`` is False. From a
    ``bundle``: its lock, with no network and no resolution."""
    if bundle:
        offline = [python, '-m', 'pip', 'install', '-q', '--no-index',
                   '--find-links', bundle, '--no-deps']
        session.run(*offline, '-r', f'{bundle}/requirements.txt',
                    external=True)
        wheel = mmcv_wheel(session, python, ops, f'{bundle}/mmcv-{MMCV}.tar.gz')
        session.run(*offline, '--force-reinstall', wheel, '-e', str(ROOT),
                    external=True)
        return
    install(session, python, stack, *[
        n for n in BUILD if not (own_torch and n.startswith('torch'))],
        own_torch=own_torch)
    spec = STACKS[stack]
    toolboxes = spec['mmcv'] is not None
    mmcv = [] if not toolboxes else [mmcv_wheel(session, python, ops)] \
        if spec['mmcv'] else ['mmcv-lite']
    extras = ','.join(spec['extras'])
    glnet_mm = ['-e', f'{ROOT}[{extras}]'] if editable else \
        requirements(*spec['extras'])
    install(session, python, stack, *mmcv, *glnet_mm, *spec.get('more', []),
            *(MIM if toolboxes else []), own_torch=own_torch)
    if toolboxes:
        install(session, python, stack, '--no-deps', 'openmim',
                own_torch=own_torch)


def new_venv(session, venv, python, own_torch=False):
    """A venv at ``venv``. With ``own_torch`` it also sees ``python``'s
    packages (its torch): a stdlib venv with its own pip (uv resolves
    without a venv's system packages), and a .pth file naming them when
    ``python`` is itself a venv's (--system-site-packages misses those)."""
    if not own_torch:
        session.run(UV, 'venv', '-q', '--seed', '--python', python,
                    str(venv), external=True, env=uv_env())
        return str(venv / 'bin' / 'python')
    if subprocess.run([python, '-m', 'venv', '--system-site-packages',
                       str(venv)]).returncode:
        session.error(f'{python} -m venv failed (on Debian: apt-get install '
                      'python3-venv)')

    def folders(py):
        return subprocess.run([py, '-c', 'import os, sys; print("\\n".join('
                               'p for p in sys.path if os.path.isdir(p)))'],
                              capture_output=True, text=True).stdout.splitlines()
    own = set(folders(str(venv / 'bin' / 'python')))
    site, = glob.glob(str(venv / 'lib' / 'python3*' / 'site-packages'))
    Path(site, '_glnet_mm_base_env.pth').write_text(''.join(
        f'{p}\n' for p in folders(python) if p not in own))
    return str(venv / 'bin' / 'python')


# ----------------------------------------------------------------- sessions
@nox.session(venv_backend='none')
def setup(session):
    """The development stack in .venv/ (Python 3.11), glnet_mm editable.

    ``-- --system-torch``: the venv also sees $PYTHON's packages and keeps
    its torch (a cluster's CUDA build); ``-- --offline DIR``: the same from
    an offline bundle (``nox -s bundle``), with no network."""
    args = session.posargs
    bundle = args[args.index('--offline') + 1] if '--offline' in args \
        else None
    own_torch = bool(bundle) or '--system-torch' in args
    python = str(VENV / 'bin' / 'python')
    if not Path(python).exists():
        base = os.environ.get('PYTHON', 'python3') if own_torch else \
            find_python(STACKS['current']['python'])
        python = new_venv(session, VENV, shutil.which(base) or base,
                          own_torch)
    fill(session, python, 'current', own_torch,
         bundle and str(Path(bundle).resolve()))
    session.run(python, '-c', 'import mmcv, mmdet, mmseg, mmpretrain, mim, '
                'glnet_mm', external=True)


def check_stack(session, stack):
    """Fill the session's venv with ``stack``, install glnet_mm's wheel as a
    user would (``--no-index``: the stack must hold all it needs), and run
    the stack's checks, each of which must run (no skips)."""
    python = session.virtualenv.location + '/bin/python'
    fill(session, python, stack, editable=False)
    dist = Path(session.create_tmp()) / 'dist'
    shutil.rmtree(dist, ignore_errors=True)
    session.run(UV, 'build', '-q', '--wheel', '--out-dir', str(dist),
                str(ROOT), external=True, env=uv_env())
    session.run(UV, 'pip', 'install', '-q', '--python', python,
                '--no-index', '--reinstall-package', 'glnet_mm',
                *map(str, dist.glob('*.whl')), external=True)
    junit = dist.parent / 'junit.xml'
    session.run(python, '-m', 'pytest', '-p', 'no:cacheprovider', '-q',
                '-ra', f'--junitxml={junit}', *STACKS[stack]['checks'],
                *session.posargs, external=True, env=dict(
                    GLNET_MM_STACK=stack, PYTHONHASHSEED='0',
                    GLNET_MM_REFERENCE_PYTHON=str(VENV / 'bin' / 'python')))
    suite = ElementTree.parse(junit).getroot()
    suite = suite if suite.tag == 'testsuite' else suite[0]
    tests, skipped = int(suite.get('tests')), int(suite.get('skipped'))
    if skipped or not tests:
        session.error(f'{skipped} of {tests} checks were skipped or none '
                      'ran: each must run on its stack (reasons above)')


@nox.session(python=find_python('3.8', False), reuse_venv=True)
def classic(session):
    """Python 3.8, torch 2.1.2, mmcv 2.1.0 with CPU ops: the common mmdet
    3.3 environment."""
    check_stack(session, 'classic')


@nox.session(python=find_python('3.12', False), reuse_venv=True)
def newest(session):
    """Python 3.12, the newest torch and numpy, mmcv-lite, mmpretrain."""
    check_stack(session, 'newest')


@nox.session(python=find_python('3.12', False), reuse_venv=True)
def timm(session):
    """Python 3.12, the newest torch, timm and transformers, no OpenMMLab
    toolbox: GLNet through timm's API alone."""
    check_stack(session, 'timm')


def out_dir(path, force):
    """``path`` as a new or empty folder (a non-empty one only with
    ``--force``): nothing a user owns is overwritten."""
    path = Path(path).resolve()
    if path.exists() and any(path.iterdir()) and not force:
        raise SystemExit(f'{path} is not empty (--force writes into it)')
    path.mkdir(parents=True, exist_ok=True)
    return path


@nox.session(venv_backend='none')
def bundle(session):
    """An offline bundle of the development stack, installed on a machine
    without network on its own torch (``setup -- --offline DIR``, the GPU
    check's ``--bundle DIR``). ``-- OUT [--python 3.12] [--have FILE]
    [--force]``: the wheels of all but torch and CUDA libraries (opencv
    headless), nox, uv and pip; their lock (requirements.txt); mmcv's
    patched sdist; glnet_mm's wheel; BUNDLE.md. ``--have``: names the
    target has (`pip freeze`), left out and taken at its version there."""
    import argparse
    parser = argparse.ArgumentParser(prog='nox -s bundle --')
    parser.add_argument('out')
    parser.add_argument('--python', default=STACKS['current']['python'])
    parser.add_argument('--have')
    parser.add_argument('--force', action='store_true')
    args = parser.parse_args(session.posargs)
    out = out_dir(args.out, args.force)
    arch = os.uname().machine
    platforms = [f'manylinux_2_{v}_{arch}' for v in (
        28, 27, 24, 17, 5)] + [f'manylinux2014_{arch}', f'manylinux1_{arch}']
    have = {re.split(r'[\s=<>!~;\[@]', line)[0].lower().replace('_', '-')
            for line in Path(args.have).read_text().split('\n')
            if line.strip()[:1].isalnum()} - {'pip', 'setuptools'} \
        if args.have else set()
    python = str(VENV / 'bin' / 'python')  # its pip downloads
    work = Path(tempfile.mkdtemp())
    # 1. mmcv's sdist, patched and re-packed
    shutil.unpack_archive(mmcv_sdist(session, python, CACHE), work)
    session.run('bash', str(ROOT / '.dev_scripts' / 'patch_mmcv.sh'),
                str(work / f'mmcv-{MMCV}'), external=True)
    session.run('tar', 'czf', str(out / f'mmcv-{MMCV}.tar.gz'), '-C',
                str(work), f'mmcv-{MMCV}', external=True)
    # 2. the lock for the target, less torch, then its wheels
    wanted = work / 'wanted.txt'  # mmcv's own needs too: it comes as sdist
    wanted.write_text('\n'.join(
        r for r in requirements('mmdet', 'mmseg', 'mmpretrain') + MIM +
        BUILD + ['openmim', 'nox', 'uv', 'addict', 'yapf', 'opencv-python',
                 'pillow'] if not r.lower().startswith(TORCH)))
    lock = work / 'lock.txt'
    session.run(UV, 'pip', 'compile', '-q', '--no-header', '--no-annotate',
                '--python-version', args.python, '--python-platform',
                f'{arch}-manylinux_2_28', '-c', constraints(
                    'current', True, work), '-o', str(lock), str(wanted),
                external=True, env=uv_env())
    pins = [line.replace('opencv-python==', 'opencv-python-headless==')
            for line in lock.read_text().split()
            if line.split('==')[0].lower().replace('_', '-') not in have]
    if any(p.lower().startswith(TORCH) for p in pins):
        session.error(f'torch or CUDA libraries in the lock: {pins}')
    (out / 'requirements.txt').write_text('\n'.join(pins) + '\n')
    session.run(python, '-m', 'pip', 'download', '-q', '--no-deps',
                '--only-binary', ':all:', '--python-version', args.python,
                '--implementation', 'cp',
                *[a for p in platforms for a in ('--platform', p)], '-d',
                str(out), '-r', str(out / 'requirements.txt'), external=True)
    # 3. glnet_mm's wheel and the manifest
    session.run(UV, 'build', '-q', '--wheel', '--out-dir', str(out),
                str(ROOT), external=True, env=uv_env())
    files = sorted(out.glob('*.whl')) + [out / f'mmcv-{MMCV}.tar.gz']
    size = sum(f.stat().st_size for f in files) / 1e6
    (out / 'BUNDLE.md').write_text(
        f'# glnet_mm offline bundle\n\nPython {args.python}, {platforms[0]}'
        f': {len(files)} files, {size:.0f} MB; left out (--have): '
        f'{", ".join(sorted(have)) or "none"}. Install: docs/gpu.md.\n')
    shutil.rmtree(work)
    session.log(f'{out}: {len(files)} files, {size:.0f} MB')


@nox.session(venv_backend='none')
def gpu_check(session):
    """The GPU check on a bare GPU machine (docs/gpu.md), on its own python3
    ($PYTHON) and torch: ``-- OUT [--bundle DIR] [--dry-run] [--force]``
    (``--dry-run``: a CPU, tiny sizes; CI runs it). Install (mmcv without
    ops), then tools/misc/gpu_check.py's plan, whose mmcv-build (CUDA ops
    for this GPU; dry run: CPU ops) is done here; each step timed and
    reported, even after a failed one, in OUT/results.json, results.md and
    gpu_check.log."""
    import argparse
    parser = argparse.ArgumentParser(prog='nox -s gpu_check --')
    parser.add_argument('out')
    parser.add_argument('--bundle')
    parser.add_argument('--dry-run', action='store_true')
    parser.add_argument('--force', action='store_true')
    args = parser.parse_args(session.posargs)
    start, out = time.time(), out_dir(args.out, args.force)
    bundle = args.bundle and str(Path(args.bundle).resolve())
    if bundle and not Path(bundle, 'requirements.txt').is_file():
        session.error(f'--bundle {bundle}: not a folder of `nox -s bundle`')
    base = shutil.which(os.environ.get('PYTHON', 'python3'))
    torch = torch_info(base)
    if not (args.dry_run or torch['gpus']):
        session.error('torch sees no CUDA GPU here; --dry-run on a CPU')
    work = Path(os.environ.get('GLNET_MM_CHECK_WORK') or tempfile.mkdtemp(
        prefix='glnet_mm_gpu_check_'))
    venv, log, steps = work / 'venv', out / 'gpu_check.log', []
    python, tool = str(venv / 'bin' / 'python'), 'tools/misc/gpu_check.py'

    def install():
        new_venv(session, venv, base, own_torch=True)
        fill(session, python, 'current', own_torch=True, bundle=bundle,
             ops='none')

    def build_mmcv():
        wheel = mmcv_wheel(session, python, 'cpu' if args.dry_run else 'cuda',
                           bundle and f'{bundle}/mmcv-{MMCV}.tar.gz')
        session.run(python, '-m', 'pip', 'install', '-q', '--no-deps',
                    '--force-reinstall', wheel, external=True)

    # the measurements, and which steps each needs: the tool's plan
    plan = json.loads(subprocess.run(
        [base, tool, 'plan', '--python', python, '--work', str(work)] + (
            ['--dry-run'] if args.dry_run else []), cwd=ROOT, check=True,
        capture_output=True, text=True).stdout)
    run_step = runpy.run_path(str(ROOT / tool))['run_step']
    for item in [dict(step='install', commands=[install], note=(
            f'a venv on the torch {torch["version"]} of {base}, mmcv without '
            f'ops, from {bundle or "the index"}'))] + plan:
        # a step without commands (mmcv-build): this session's build
        done = run_step(steps, log, **{'commands': [build_mmcv], **item})
        session.log(f'{done["step"]}: {done["status"]} in {done["seconds"]} s')
    (work / 'steps.jsonl').write_text(''.join(json.dumps(s) + '\n'
                                              for s in steps))
    session.run(base, tool, 'report', '--steps', str(work / 'steps.jsonl'),
                '--wall-s', str(int(time.time() - start)),
                '--out-json', str(out / 'results.json'), '--out-md',
                str(out / 'results.md'), *(['--dry-run'] if args.dry_run
                                           else []), external=True)
    # a step skipped because another failed: that one fails the check; one
    # that cannot run here (trt without TensorRT) does not
    if any(s['status'] == 'failed' for s in steps):
        session.error(f'a step did not succeed: {out}/results.md')
