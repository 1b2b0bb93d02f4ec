"""The mmcv wheel of one stack, built once and cached (noxfile.py runs it
with the python of the venv it fills, whose torch the ops compile against).

    python .dev_scripts/mmcv_wheel.py CACHE_DIR --ops cpu|cuda|none \\
        --sdist FILE [--patch SCRIPT]

Prints the path of a checked wheel in CACHE_DIR, building one only when
there is none: the sdist patched by patch_mmcv.sh (or ``--patch``), then
``pip wheel --no-deps --no-build-isolation`` (mmcv's setup.py must import
this python's torch, or it silently builds no ops: mmcv#3310, #3319) with
this process's environment (MMCV_WITH_OPS, FORCE_CUDA, MAX_JOBS, ...).
A good wheel is kept as soon as it is checked (it holds ``mmcv/_ext*.so``,
or none with ``--ops none``); a failed compile keeps its objects in
``CACHE_DIR.build/src``, where the next run of the same sdist and patch
resumes; a build that succeeds without the ops is removed, with what to do.
"""
import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path


class SetupError(Exception):
    """A failure with a message for the user."""


def say(message):
    print(f'[mmcv] {message}', file=sys.stderr, flush=True)


def wheel_problem(wheel, with_ops):
    """What is wrong with ``wheel`` for mmcv with (or without) compiled ops;
    None if nothing."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile) as e:
        return f'{wheel} is not a readable wheel ({e})'
    ops = [n for n in names if re.match(r'mmcv/_ext.*\.(so|pyd)$', n)]
    if not any(n.startswith('mmcv/') for n in names):
        return f'{wheel} holds no mmcv package'
    if with_ops != bool(ops):
        return f'{wheel} holds ' + (f'compiled ops ({ops[0]}) where none were '
                                    'wanted' if ops else
                                    'no compiled ops (no mmcv/_ext*.so)')
    return None


def source(work, sdist, patch):
    """The unpacked, patched sdist in ``work/src``: kept from an earlier run
    of the same sdist and patch (its compiled objects too), else anew."""
    src, stamp = work / 'src', work / 'src.stamp'
    key = hashlib.sha256(Path(sdist).read_bytes() +
                         Path(patch).read_bytes()).hexdigest()[:16]
    if src.is_dir() and stamp.is_file() and stamp.read_text() == key:
        say(f'resuming the build in {src} (the objects compiled are kept)')
        return src
    shutil.rmtree(work, ignore_errors=True)
    with tarfile.open(sdist) as tf:  # only plain files under the target
        tf.extractall(work / 'unpack', **({'filter': 'data'} if hasattr(
            tarfile, 'data_filter') else {}))
    top, = (work / 'unpack').iterdir()
    if subprocess.run(['bash', str(patch), str(top)]).returncode:
        raise SetupError(f'{patch} failed on {top}')
    top.rename(src)
    stamp.write_text(key)
    return src


def ensure(cache_dir, ops, sdist, patch):
    """Path of a checked wheel in ``cache_dir`` (see the module docstring)."""
    final, with_ops = Path(cache_dir), ops != 'none'
    work = final.parent / (final.name + '.build')
    for wheel in final.glob('mmcv*.whl'):
        problem = wheel_problem(wheel, with_ops)
        if problem is None:
            return wheel
        say(f'removed an unusable wheel: {problem}')
        wheel.unlink()
    src = source(work, sdist, patch)
    log, out = work / 'build.log', work / 'wheel'
    say(f'compiling ({ops} ops, MAX_JOBS={os.environ.get("MAX_JOBS")}); '
        f'log: {log}')
    with open(log, 'w') as f:
        rc = subprocess.run(
            [sys.executable, '-m', 'pip', 'wheel', '-v', '--no-deps',
             '--no-build-isolation', '--disable-pip-version-check', '-w',
             str(out), '.'], cwd=src, stdout=f,
            stderr=subprocess.STDOUT).returncode
    built = sorted(out.glob('mmcv*.whl'))
    if rc or len(built) != 1:
        text = log.read_text(errors='replace').splitlines()
        end = next((i for i, t in enumerate(text)
                    if 'subprocess-exited-with-error' in t), len(text))
        errors = [t for t in text[:end]
                  if re.search(r'error|FAILED:', t, re.I)] or text[:end]
        raise SetupError(
            f'the mmcv build failed (pip exit status {rc}). Its errors:\n'
            + '\n'.join(errors[-15:]) + f'\nThe whole log: {log}. Fix the '
            f'cause and run again: it resumes from the objects kept in {src} '
            f'(remove {work} to start from scratch).')
    problem = wheel_problem(built[0], with_ops)
    if problem is not None:
        shutil.rmtree(work)
        raise SetupError(
            f'{problem}; the wheel and its build folder were removed. mmcv '
            'builds no ops, without an error, when its setup.py cannot import '
            'torch or MMCV_WITH_OPS=0: check that this python imports torch '
            '(or choose GLNET_MM_MMCV_OPS=none, mmcv-lite).')
    final.mkdir(parents=True, exist_ok=True)
    os.replace(built[0], final / built[0].name)
    shutil.rmtree(work, ignore_errors=True)
    return final / built[0].name


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('cache_dir')
    parser.add_argument('--ops', required=True, choices=('cpu', 'cuda', 'none'))
    parser.add_argument('--sdist', required=True, help='mmcv sdist (.tar.gz)')
    parser.add_argument('--patch', default=str(
        Path(__file__).resolve().parent / 'patch_mmcv.sh'))
    args = parser.parse_args(argv)
    try:
        if not Path(args.sdist).is_file():
            raise SetupError(f'--sdist {args.sdist}: no such file')
        print(ensure(args.cache_dir, args.ops, args.sdist, args.patch))
    except SetupError as e:
        print(f'[mmcv] error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
