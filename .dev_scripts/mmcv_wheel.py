"""The mmcv wheel of one stack, built once and cached: step 2 of setup_env.sh.

    python .dev_scripts/mmcv_wheel.py check WHEEL (--ops | --no-ops)
    python .dev_scripts/mmcv_wheel.py ensure --cache-dir DIR --ops cpu|cuda|none
        (--sdist FILE | --download SPEC) [--patch SCRIPT] [--python PY]

``check`` tells whether WHEEL is an mmcv wheel with compiled ops
(``mmcv/_ext*.so``) or without them, as wanted. It reads the zip's names in
Python: a shell pipeline such as ``unzip -l | grep -q`` is read as a failure
under ``pipefail`` whenever grep stops first and the lister dies of SIGPIPE.

``ensure`` prints the path of a checked wheel in DIR, building one only when
DIR has none. Nothing a build leaves makes the next run compile for nothing:

* a good wheel is moved into DIR as soon as it is checked;
* a wheel left by an interrupted run (in ``DIR.build/wheel``) is checked and
  adopted if good, removed with a message if not;
* a failed compile keeps its source tree and objects in ``DIR.build/src``:
  the next run resumes there (the extension builder, ninja, recompiles only
  what is missing), unless the sdist or the patch script changed;
* a build that ends without error but yields a wheel without compiled ops is
  removed whole, with what to do, since running it again would do the same.

The build runs ``PY -m pip wheel --no-deps --no-build-isolation`` in the
unpacked (and patched) sdist, with this process's environment (the caller
sets MMCV_WITH_OPS, FORCE_CUDA, MAX_JOBS, CPPFLAGS, ...); its output goes to
``DIR.build/build.log``. No build isolation: mmcv's setup.py must import
PY's torch, or it silently builds no ops (mmcv#3310, #3319). Exit status 1 with a message on stderr on failure.
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


def say(message):
    print(f'[setup] {message}', file=sys.stderr, flush=True)


class SetupError(Exception):
    """A failure with a message for the user."""


def wheel_problem(wheel, with_ops):
    """What is wrong with ``wheel`` for mmcv with (or without) compiled ops;
    None if nothing."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile) as e:
        return f'{wheel} is not a readable wheel ({e})'
    if not any(n.startswith('mmcv/') for n in names):
        return f'{wheel} holds no mmcv package'
    ops = [n for n in names
           if n.startswith('mmcv/_ext') and n.endswith(('.so', '.pyd'))]
    if with_ops and not ops:
        return f'{wheel} holds no compiled ops (no mmcv/_ext*.so)'
    if not with_ops and ops:
        return f'{wheel} holds compiled ops ({ops[0]}) where none were wanted'
    return None


def _wheels(folder):
    return sorted(Path(folder).glob('mmcv*.whl'))


def _digest(*paths):
    h = hashlib.sha256()
    for p in paths:
        if p is not None:
            h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


def _fetch_sdist(spec, python, dest):
    """The sdist of ``spec`` (e.g. ``mmcv==2.1.0``) from the index, into
    ``dest``; reused if already there."""
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob('*.tar.gz'))
    if not found:
        cmd = [python, '-m', 'pip', 'download', '-q',
               '--disable-pip-version-check', '--no-deps',
               '--no-build-isolation', '--no-binary', ':all:', spec,
               '-d', str(dest)]
        done = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
        # Less pip's notes on absent local indexes of a pip.conf.
        sys.stderr.write(''.join(
            line for line in done.stderr.splitlines(keepends=True)
            if not line.startswith('WARNING: Location')))
        if done.returncode:
            raise SetupError(f'pip could not download the sdist of {spec}')
        found = sorted(dest.glob('*.tar.gz'))
    if len(found) != 1:
        raise SetupError(f'expected one sdist in {dest}, found {len(found)}')
    return found[0]


def _prepare_source(work, sdist, patch):
    """The unpacked, patched sdist in ``work/src``: kept from an earlier run
    when it came from the same sdist and patch script, else made anew."""
    src, stamp = work / 'src', work / 'src.stamp'
    key = _digest(sdist, patch)
    if src.is_dir() and stamp.is_file() and stamp.read_text() == key:
        say(f'resuming the build in {src} (objects compiled by an earlier '
            'run are kept)')
        return src
    shutil.rmtree(src, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    unpacked = work / 'unpack'
    shutil.rmtree(unpacked, ignore_errors=True)
    with tarfile.open(sdist) as tf:
        # Only plain files under the target (Python's 'data' filter).
        safe = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}
        tf.extractall(unpacked, **safe)
    tops = list(unpacked.iterdir())
    if len(tops) != 1 or not (tops[0] / 'setup.py').is_file():
        raise SetupError(f'{sdist} does not unpack to one folder with a '
                         'setup.py')
    if patch is not None and subprocess.run(
            ['bash', str(patch), str(tops[0])]).returncode:
        raise SetupError(f'{patch} failed on {tops[0]}')
    tops[0].rename(src)
    unpacked.rmdir()
    stamp.write_text(key)
    return src


def _errors(log, lines=15):
    """The compiler's and setup.py's error lines of a build log (pip's own
    summary left out), else its last lines."""
    text = log.read_text(errors='replace').splitlines()
    # What pip prints after the build's own output: the command it ran.
    end = next((i for i, t in enumerate(text)
                if 'subprocess-exited-with-error' in t), len(text))
    found = [t for t in text[:end] if re.search(r'error|FAILED:', t, re.I)]
    return '\n'.join((found or text[:end] or text)[-lines:])


def ensure(cache_dir, ops, python, sdist=None, download=None, patch=None):
    """Path of a checked wheel in ``cache_dir`` (see the module docstring)."""
    final = Path(cache_dir)
    work = final.parent / (final.name + '.build')
    with_ops = ops != 'none'
    for wheel in _wheels(final):
        problem = wheel_problem(wheel, with_ops)
        if problem is None:
            return wheel
        say(f'the cached wheel is unusable: {problem}; removed, building anew')
        wheel.unlink()
    for wheel in _wheels(work / 'wheel'):
        problem = wheel_problem(wheel, with_ops)
        if problem is None:
            say(f'adopting the wheel an earlier run built ({wheel.name})')
            return _keep(wheel, final, work)
        say(f'removed a wheel left by an earlier run: {problem}')
        wheel.unlink()

    work.mkdir(parents=True, exist_ok=True)
    if sdist is None:
        sdist = _fetch_sdist(download, python, work / 'sdist')
    src = _prepare_source(work, Path(sdist), patch)
    log = work / 'build.log'
    out = work / 'wheel'
    out.mkdir(exist_ok=True)
    say(f'compile log: {log}')
    with open(log, 'w') as f:
        rc = subprocess.run(
            [python, '-m', 'pip', 'wheel', '-v', '--no-deps',
             '--disable-pip-version-check', '--no-build-isolation',
             '-w', str(out), '.'],
            cwd=src, stdout=f, stderr=subprocess.STDOUT).returncode
    built = _wheels(out)
    if rc or len(built) != 1:
        for wheel in built:
            wheel.unlink()
        raise SetupError(
            f'the mmcv build failed (pip exit status {rc}). Its errors:\n'
            f'{_errors(log)}\nThe whole log: {log}. Fix the cause and run the '
            f'setup again: it resumes from the objects kept in {src}/build '
            f'(remove {work} to start from scratch).')
    problem = wheel_problem(built[0], with_ops)
    if problem is not None:
        shutil.rmtree(work)
        raise SetupError(
            f'{problem}; the wheel and its build folder were removed. '
            "mmcv's setup.py builds no ops, without an error, when it cannot "
            'import torch (an isolated build) or when MMCV_WITH_OPS=0: check '
            'that the python building it imports torch, then run the setup '
            'again (or choose GLNET_MM_MMCV_OPS=none for mmcv-lite).')
    return _keep(built[0], final, work)


def _keep(wheel, final, work):
    """Move a checked wheel into the cache folder; drop the build folder."""
    final.mkdir(parents=True, exist_ok=True)
    target = final / wheel.name
    os.replace(wheel, target)
    shutil.rmtree(work, ignore_errors=True)
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    check = sub.add_parser('check', help='check the contents of a wheel')
    check.add_argument('wheel')
    want = check.add_mutually_exclusive_group(required=True)
    want.add_argument('--ops', dest='with_ops', action='store_true')
    want.add_argument('--no-ops', dest='with_ops', action='store_false')
    ens = sub.add_parser('ensure', help='print a cached wheel, building one '
                         'if needed')
    ens.add_argument('--cache-dir', required=True)
    ens.add_argument('--ops', required=True, choices=('cpu', 'cuda', 'none'))
    source = ens.add_mutually_exclusive_group(required=True)
    source.add_argument('--sdist', help='a local sdist (.tar.gz)')
    source.add_argument('--download', metavar='SPEC',
                        help='fetch the sdist of SPEC (e.g. mmcv==2.1.0)')
    ens.add_argument('--patch', help='a script run on the unpacked sdist')
    ens.add_argument('--python', default=sys.executable,
                     help='the interpreter that builds (default: this one)')
    args = parser.parse_args(argv)
    try:
        if args.command == 'check':
            problem = wheel_problem(args.wheel, args.with_ops)
            if problem is not None:
                raise SetupError(problem)
            print(args.wheel)
        else:
            if args.sdist and not Path(args.sdist).is_file():
                raise SetupError(f'--sdist {args.sdist}: no such file')
            print(ensure(args.cache_dir, args.ops, args.python,
                         sdist=args.sdist, download=args.download,
                         patch=args.patch))
    except SetupError as e:
        print(f'[setup] error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
