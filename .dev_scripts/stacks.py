"""The supported stacks besides the development one: their recipes, the one
script that builds each into a real venv, and the checks each runs.

    python .dev_scripts/stacks.py build NAME...   # build or reuse; print the venv
    python .dev_scripts/stacks.py check NAME...   # build, install glnet_mm, run the checks
    make test-stacks                              # check classic newest (what CI runs)

The development stack ("current": Python 3.11, the pinned torch 2.14.1, the
patched mmcv 2.1.0) is ``make setup`` (.dev_scripts/setup_env.sh,
requirements/*.txt) and runs the whole suite. The others are the two ends of
what glnet_mm supports, built here as a user has them:

* classic: the common mmdet 3.3 environment: Python 3.8, torch 2.1.2, numpy
  1.24, mmcv 2.1.0 with its ops compiled against that torch (as the prebuilt
  OpenMMLab wheel for torch 2.1 is; .dev_scripts/mmcv_wheel.py builds it once
  and caches it), mmdet 3.3, mmseg 1.2.2, mmpretrain 1.2.
* newest: Python 3.12 and the newest torch, torchvision and numpy on the
  index, mmcv-lite (no ops, nothing compiled), mmpretrain.

Each venv lives outside the checkout, in ``$GLNET_MM_CACHE/stacks/NAME``
(default ~/.cache/glnet_mm), with a stamp of its recipe: a later run, from
any clone on the machine, reuses it while the stamp is unchanged and builds
it anew otherwise. A build that stops half way leaves no stamp, so the next
run starts that venv again (pip's cache and the cached mmcv wheel keep that
cheap). ``--rebuild`` builds anew anyway (the newest stack's "newest" is the
newest of the day it was built).

``check`` installs glnet_mm into the stack as a user would, from a wheel built
from this checkout (``python -m build``), with ``pip install --no-index``: the
stack must already hold everything glnet_mm needs, and pip may change
nothing else. Not editable: the venv is shared by every clone on the
machine, so each check installs the clone it runs from. Then the stack's
python runs the stack's checks (``CHECKS`` below: tests of the suite, by
file or test id), with GLNET_MM_STACK=NAME; a skipped test fails the check
(each selected test must run there), and tests that compare with the
development stack run its python (``--reference-python``, default
.venv/bin/python).

Interpreters: ``pythonX.Y`` on PATH, else pyenv's newest X.Y.* (``PYENV_ROOT``,
default ~/.pyenv), else /usr/bin/pythonX.Y. Environment: GLNET_MM_CACHE,
MAX_JOBS (mmcv's compile jobs, default: all cores).
"""
import argparse
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# ---- the recipes: the one place of each stack's versions -------------------
#
# python   the interpreter's X.Y
# base     installed first, then held by constraints through the later steps
#          (what mmcv's build needs: torch, setuptools, ...)
# mmcv     (version, ops): 'cpu' builds that mmcv from its sdist with CPU ops
#          against the base torch (.dev_scripts/mmcv_wheel.py, cached);
#          None: mmcv comes from ``packages`` (mmcv-lite, a pure wheel)
# packages the rest, in one pip call (with the mmcv wheel, for its deps)
# no_deps  installed with --no-deps (openmim: its `opendatalab` dependency
#          downgrades setuptools and pins old requests/rich; `mim train` never
#          imports it; its runtime needs are in ``packages``)
# imports  what must import once built
# lift_pip_constraints  pip runs with PIP_CONSTRAINT=/dev/null: a pip.conf
#          `constraint` (a machine's cap on torch, say) must not hold back
#          "the newest torch on the index"
# Unpinned names resolve to the newest release that supports the stack's
# Python and pins.
MIM_RUNTIME = ['click', 'colorama', 'model-index', 'pandas', 'requests',
               'rich', 'tabulate']
TEST_NEEDS = ['pytest', 'omegaconf==2.3.0', 'build']
STACKS = {
    'classic': dict(
        python='3.8',
        base=['torch==2.1.2', 'torchvision==0.16.2', 'numpy==1.24.4',
              # mmcv 2.1.0's setup.py imports pkg_resources (gone in 81);
              # >= 64: glnet_mm's pyproject build
              'setuptools>=64,<81', 'wheel', 'ninja'],
        mmcv=('2.1.0', 'cpu'),
        packages=['mmengine==0.10.7', 'mmdet==3.3.0', 'mmsegmentation==1.2.2',
                  'mmpretrain==1.2.0',
                  # mmsegmentation 1.2.2 imports these without declaring them
                  'ftfy', 'regex',
                  # the last pycocotools for Python 3.8 (mmdet's CocoMetric)
                  'pycocotools==2.0.7',
                  'opencv-python==4.10.0.84',
                  *MIM_RUNTIME, *TEST_NEEDS],
        no_deps=['openmim==0.3.9'],
        imports=['mmcv.ops', 'mmdet', 'mmseg', 'mmpretrain', 'mim'],
        lift_pip_constraints=False),
    'newest': dict(
        python='3.12',
        # mmengine and openmim import pkg_resources (gone in setuptools 81)
        base=['torch', 'torchvision', 'numpy', 'setuptools<81'],
        mmcv=None,
        packages=['mmcv-lite', 'mmengine', 'mmpretrain', *MIM_RUNTIME,
                  *TEST_NEEDS],
        no_deps=['openmim'],
        imports=['mmcv', 'mmpretrain', 'mim'],
        lift_pip_constraints=True),
}

# ---- the checks: tests of the suite each stack runs --------------------------
# Files or test ids, as pytest takes them; DESELECT: ids left out of a file
# selected above, with why.
COMMON_CHECKS = [
    'tests/test_backbone.py',          # the backbone contract
    # goldens of ../shared/reference, through GLNet and mmpretrain, and the
    # development stack's outputs (its python: --reference-python)
    'tests/test_official_parity.py::test_golden_stage_outputs',
    'tests/test_official_parity.py::test_golden_logits_through_mmpretrain',
    'tests/test_official_parity.py::test_outputs_match_the_development_stack',
    'tests/test_checkpoint.py',        # safe loading, malicious pickles
    'tests/test_compat.py',            # what needs a newer torch refuses
    'tests/test_compile.py::test_no_graph_breaks',  # torch.compile: one graph
    'tests/test_packaging.py',         # the wheel changes nothing installed
    'tests/test_registry.py::test_import_has_no_side_effects',
    'tests/test_registry.py::test_each_registry_builds_glnet[mmpretrain]',
    'tests/test_registry.py::test_custom_imports_in_a_config',
    # mmpretrain's get_model by name, an official file with its DictConfig
    # over HTTP, a malicious one refused
    'tests/test_model_zoo.py::test_get_model_by_name_converts_an_official_file',
    'tests/test_model_zoo.py::test_get_model_from_a_url',
    'tests/test_model_zoo.py::test_url_checkpoints_load_safely',
    'tests/test_classification.py::test_classifier_forward_and_loss',
    'tests/test_classification.py::test_mim_train_and_test_the_toy_classifier',
]
# Left out of the stacks for time (the development stack runs them): the
# parameter, key and FLOP counts of every released model (~3 min), the rest
# of the model zoo file, and torch.compile's compiled-vs-eager test on
# classic (torch 2.1's inductor compiles each kernel with its own g++ call:
# 7 min on 2 loaded cores; it passed there once).
CHECKS = {
    'classic': COMMON_CHECKS + [
        'tests/test_registry.py::test_each_registry_builds_glnet[mmdet]',
        'tests/test_registry.py::test_each_registry_builds_glnet[mmseg]',
        'tests/test_resume.py::test_detection_resumed_by_mim_is_exact',
        'tests/test_segmentation_toy.py::test_mim_train',
        'tests/test_segmentation_toy.py::test_mim_test_with_overlays',
    ],
    'newest': COMMON_CHECKS + [
        'tests/test_compile.py::test_compiled_matches_eager',
    ],
}
DESELECT = {
    'classic': [],
    # mmdet is not in the newest stack (mmcv-lite has no RoI ops)
    'newest': ['tests/test_checkpoint.py::'
               'test_init_cfg_pretrained_through_the_registry'],
}

# Bump when the build procedure below changes what a venv holds.
BUILD_FORMAT = 1


def say(message):
    print(f'[stacks] {message}', file=sys.stderr, flush=True)


class StackError(Exception):
    """A failure with a message for the user."""


def cache_root():
    return Path(os.environ.get('GLNET_MM_CACHE',
                               Path.home() / '.cache' / 'glnet_mm'))


def venv_dir(name):
    return cache_root() / 'stacks' / name


def find_python(version):
    """Path of a Python ``version`` ('3.8') interpreter, or a StackError
    saying how to get one."""
    pyenv = Path(os.environ.get('PYENV_ROOT', Path.home() / '.pyenv'))
    found = [shutil.which(f'python{version}')]
    patch = sorted(glob.glob(str(pyenv / 'versions' / f'{version}.*' / 'bin' /
                                 'python')),
                   key=lambda p: [int(n) for n in
                                  re.findall(r'\d+', Path(p).parts[-3])])
    found += patch[::-1] + [f'/usr/bin/python{version}']
    probe = ('import sys; print("%d.%d" % sys.version_info[:2]); '
             'print(sys.executable)')
    for candidate in filter(None, found):
        try:
            out = subprocess.run([candidate, '-c', probe], capture_output=True,
                                 text=True, timeout=60)
        except OSError:
            continue
        lines = out.stdout.split()
        if out.returncode == 0 and lines[:1] == [version]:
            return lines[1]
    raise StackError(
        f'no Python {version} found (python{version} on PATH, pyenv '
        f'{pyenv}/versions/{version}.*, /usr/bin/python{version}): install '
        f'one, e.g. `pyenv install {version}` or `apt-get install '
        f'python{version} python{version}-venv python{version}-dev`')


def python_version(python):
    return subprocess.run(
        [python, '-c', 'import platform; print(platform.python_version())'],
        capture_output=True, text=True, check=True).stdout.strip()


def stamp_of(name, python):
    """What a venv of stack ``name`` built with ``python`` is made of: its
    recipe, the interpreter's full version and, where mmcv is compiled, the
    scripts that build it."""
    recipe = dict(STACKS[name], format=BUILD_FORMAT,
                  python_full=python_version(python))
    h = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    if recipe['mmcv']:
        for script in ('mmcv_wheel.py', 'patch_mmcv.sh'):
            h.update((HERE / script).read_bytes())
    return h.hexdigest()[:16]


def pip_env(recipe):
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK='1')
    env.pop('PYTHONPATH', None)
    if recipe['lift_pip_constraints']:
        env['PIP_CONSTRAINT'] = os.devnull
    return env


def run(cmd, env=None, what=None, quiet=False):
    """Run ``cmd``; pip's notes on a pip.conf's absent local index folders
    are left out of its output; ``quiet``: its output only if it fails. A
    StackError on failure."""
    proc = subprocess.Popen([str(c) for c in cmd], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    kept = []
    for line in proc.stdout:
        if line.startswith('WARNING: Location'):
            continue
        if quiet:
            kept = (kept + [line])[-40:]
        else:
            sys.stderr.write(line)
    if proc.wait():
        sys.stderr.write(''.join(kept))
        raise StackError(f'{what or cmd[0]} failed (exit status '
                         f'{proc.returncode})')


def pip(venv, recipe, *args):
    run([venv / 'bin' / 'python', '-m', 'pip', 'install', '-q', *args],
        env=pip_env(recipe), what=f'pip install {" ".join(map(str, args))}')


def build_mmcv(venv, recipe):
    """The cached mmcv wheel of this stack's torch and Python, built once
    (.dev_scripts/mmcv_wheel.py: kept when good, resumed after a failed
    compile), named like setup_env.sh's."""
    version, ops = recipe['mmcv']
    python = venv / 'bin' / 'python'
    torch_version, pytag = subprocess.run(
        [python, '-c', 'import sys, torch; print(torch.__version__, '
         '"cp%d%d" % sys.version_info[:2])'], capture_output=True,
        text=True, check=True).stdout.split()
    cache = (cache_root() / f'mmcv-{version}-torch{torch_version}-{pytag}-'
             f'{os.uname().machine}-{ops}')
    env = dict(pip_env(recipe), MMCV_WITH_OPS='1', FORCE_CUDA='0',
               MAX_JOBS=os.environ.get('MAX_JOBS', str(os.cpu_count())),
               # no debug info: the same code, ~60% of the compile time
               CPPFLAGS=(os.environ.get('CPPFLAGS', '') + ' -g0').strip())
    if not any(cache.glob('mmcv*.whl')):
        say(f'building mmcv {version} with {ops} ops against torch '
            f'{torch_version} (minutes; cached in {cache})')
    out = subprocess.run(
        [sys.executable, HERE / 'mmcv_wheel.py', 'ensure', '--cache-dir',
         cache, '--ops', ops, '--download', f'mmcv=={version}', '--patch',
         HERE / 'patch_mmcv.sh', '--python', python],
        env=env, stdout=subprocess.PIPE, text=True)
    if out.returncode:
        raise StackError('the mmcv build failed (above)')
    return cache, Path(out.stdout.strip())


def build(name, rebuild=False):
    """The venv of stack ``name``, built unless one with the same stamp is
    there."""
    recipe = STACKS[name]
    venv = venv_dir(name)
    python = find_python(recipe['python'])
    stamp = stamp_of(name, python)
    stamp_file = venv / '.glnet_mm_stack'
    if (not rebuild and stamp_file.is_file()
            and stamp_file.read_text().strip() == stamp
            and (venv / 'bin' / 'python').exists()):
        say(f'{name}: reusing {venv} (recipe unchanged)')
        return venv
    t0 = time.time()
    say(f'{name}: building {venv} (Python {python_version(python)})')
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    made = subprocess.run([python, '-m', 'venv', venv], capture_output=True,
                          text=True)
    if made.returncode:
        raise StackError(
            f'{python} -m venv failed (on Debian/Ubuntu: apt-get install '
            f'python{recipe["python"]}-venv): {made.stderr.strip()}')
    steps = {}
    t = time.time()
    pip(venv, recipe, '--upgrade', 'pip')
    pip(venv, recipe, *recipe['base'])
    steps['base'] = time.time() - t
    # The base pins hold through the later steps.
    constraints = venv / 'base-constraints.txt'
    frozen = subprocess.run([venv / 'bin' / 'python', '-m', 'pip', 'freeze'],
                            capture_output=True, text=True, check=True,
                            env=pip_env(recipe)).stdout
    base_names = {re.split(r'[<>=!~ ]', r)[0].lower() for r in recipe['base']}
    constraints.write_text(''.join(
        line + '\n' for line in frozen.splitlines()
        if re.split(r'[=@ ]', line)[0].lower() in base_names))
    wheel = []
    if recipe['mmcv']:
        t = time.time()
        mmcv_cache, mmcv_wheel = build_mmcv(venv, recipe)
        wheel = [mmcv_wheel]
        steps['mmcv'] = time.time() - t
    t = time.time()
    pip(venv, recipe, '-c', constraints, *wheel, *recipe['packages'])
    pip(venv, recipe, '--no-deps', *recipe['no_deps'])
    steps['packages'] = time.time() - t
    if recipe['mmcv'] and not (mmcv_cache / 'ops-checked').exists():
        # once per cached wheel: its RoIAlign and NMS against torchvision's
        run([venv / 'bin' / 'python', HERE / 'check_mmcv_ops.py', '--device',
             'cpu'], env=pip_env(recipe), what="the check of mmcv's ops")
        (mmcv_cache / 'ops-checked').touch()
    run([venv / 'bin' / 'python', '-c',
         'import ' + ', '.join(recipe['imports'])], env=pip_env(recipe),
        what=f'importing {", ".join(recipe["imports"])} in {venv}')
    (venv / 'freeze.txt').write_text(subprocess.run(
        [venv / 'bin' / 'python', '-m', 'pip', 'freeze'], capture_output=True,
        text=True, check=True, env=pip_env(recipe)).stdout)
    stamp_file.write_text(stamp + '\n')
    say(f'{name}: built in {time.time() - t0:.0f} s (' + ', '.join(
        f'{k} {v:.0f} s' for k, v in steps.items()) + f'); {venv}/freeze.txt '
        'lists what it holds')
    return venv


def install_glnet_mm(venv, recipe, tmp):
    """glnet_mm's wheel, built from this checkout by the stack's python,
    installed with nothing fetched; it must then import from the venv."""
    python = venv / 'bin' / 'python'
    dist = Path(tmp) / 'dist'
    run([python, '-m', 'build', '--no-isolation', '--outdir', dist, ROOT],
        env=pip_env(recipe), what='building the glnet_mm wheel',
        quiet=True)
    wheel, = dist.glob('glnet_mm-*.whl')
    subprocess.run([python, '-m', 'pip', 'uninstall', '-q', '-y', 'glnet_mm'],
                   env=pip_env(recipe), capture_output=True)
    pip(venv, recipe, '--no-index', wheel)
    where = subprocess.run([python, '-c', 'import glnet_mm; '
                            'print(glnet_mm.__file__)'], cwd=tmp,
                           capture_output=True, text=True,
                           env=pip_env(recipe))
    if where.returncode or not where.stdout.startswith(str(venv)):
        raise StackError(f'glnet_mm does not import from {venv}: '
                         f'{where.stdout}{where.stderr}')


def check(name, reference_python, pytest_args=(), rebuild=False):
    """Build (or reuse) stack ``name``, install glnet_mm, run its checks."""
    recipe = STACKS[name]
    t0 = time.time()
    venv = build(name, rebuild)
    t_build = time.time() - t0
    with tempfile.TemporaryDirectory(prefix=f'glnet_mm_{name}_') as tmp:
        install_glnet_mm(venv, recipe, tmp)
        t_install = time.time() - t0 - t_build
        junit = Path(tmp) / 'junit.xml'
        args = [venv / 'bin' / 'pytest', '-p', 'no:cacheprovider', '-q', '-ra',
                f'--junitxml={junit}', *CHECKS[name]]
        args += [f'--deselect={d}' for d in DESELECT[name]]
        env = dict(pip_env(recipe), GLNET_MM_STACK=name,
                   GLNET_MM_REFERENCE_PYTHON=str(reference_python),
                   PYTHONHASHSEED='0')
        say(f'{name}: running its checks with {venv}/bin/python')
        rc = subprocess.run([*map(str, args), *pytest_args], cwd=ROOT,
                            env=env).returncode
        suite = ET.parse(junit).getroot()
        suite = suite if suite.tag == 'testsuite' else suite.find('testsuite')
        counts = {k: int(suite.get(k, 0))
                  for k in ('tests', 'failures', 'errors', 'skipped')}
    t_checks = time.time() - t0 - t_build - t_install
    say(f'{name}: venv {t_build:.0f} s, glnet_mm install {t_install:.0f} s, '
        f'checks {t_checks:.0f} s; {counts}')
    if rc:
        raise StackError(f'{name}: the checks failed (pytest exit status '
                         f'{rc})')
    if counts['skipped'] or not counts['tests']:
        raise StackError(f'{name}: {counts["skipped"]} of {counts["tests"]} '
                         'selected tests were skipped or none ran: every '
                         'selected test must run on its stack (reasons '
                         'above)')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = []  # after --: more pytest arguments for `check`
    if '--' in argv:
        argv, extra = argv[:argv.index('--')], argv[argv.index('--') + 1:]
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    parsers = {c: sub.add_parser(c) for c in ('build', 'check')}
    for p in parsers.values():
        p.add_argument('names', nargs='+', choices=sorted(STACKS),
                       metavar='NAME', help=' | '.join(sorted(STACKS)))
        p.add_argument('--rebuild', action='store_true',
                       help='build anew even if the recipe is unchanged')
    parsers['check'].add_argument(
        '--reference-python', default=str(ROOT / '.venv' / 'bin' / 'python'),
        help="the development stack's python (make setup), whose outputs "
        'the checks compare with (default: .venv/bin/python)')
    args = parser.parse_args(argv)
    try:
        for name in args.names:
            lock_path = cache_root() / 'stacks' / f'{name}.lock'
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            with open(lock_path, 'w') as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # one run per stack at once
                if args.command == 'build':
                    print(build(name, args.rebuild))
                    continue
                if not Path(args.reference_python).exists():
                    raise StackError(
                        f'no development stack at {args.reference_python}: '
                        'run `make setup` first (the checks compare with its '
                        'outputs), or pass --reference-python')
                check(name, args.reference_python, extra, args.rebuild)
    except StackError as e:
        raise SystemExit(f'[stacks] error: {e}') from None
    return 0


if __name__ == '__main__':
    sys.exit(main())
