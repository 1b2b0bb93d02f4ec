"""The toy-data generators share one command line and one output guard, and
each imports only what it needs (no OpenMMLab toolbox); the toy runs have
one entry, the task as its argument."""
import importlib
import os
import subprocess
import sys

import pytest
from conftest import REPO, needs

GENERATORS = ('toy_coco', 'toy_ade', 'toy_imagefolder')


def generator(name):
    """``(make_<name>, main)`` of ``glnet_mm.datasets.<name>``."""
    if name == 'toy_coco':
        needs('pycocotools')  # the masks' RLE
    module = importlib.import_module(f'glnet_mm.datasets.{name}')
    return getattr(module, f'make_{name}'), module.main


def files(root):
    """Every file under ``root``, as sorted relative paths."""
    return sorted(str(p.relative_to(root)) for p in root.rglob('*')
                  if p.is_file())


# images per split of ``--num-train 1 --num-val 1``: the image folder
# counts one per class (6 classes)
COUNTS = dict(toy_coco=dict(train=1, val=1), toy_ade=dict(train=1, val=1),
              toy_imagefolder=dict(train=6, val=6))


@pytest.mark.parametrize('name', GENERATORS)
def test_never_overwrites_a_folder(name, tmp_path, capsys):
    """The one test of the output guard (every generator shares it): a
    non-empty folder, the generator's own output or a user's, is refused
    by the function (FileExistsError) and by the command line (exit 2,
    naming --force) before anything is written; ``force=True`` and
    ``--force`` rewrite the toy files and leave the user's alone."""
    make, main = generator(name)
    out = tmp_path / 'data'
    main([str(out), '--num-train', '1', '--num-val', '1', '--size', '64'])
    assert 'train images' in capsys.readouterr().out
    written = files(out)
    assert written
    with pytest.raises(FileExistsError, match='not empty'):  # its own data
        make(str(out), num_train=1, num_val=1, size=64)
    (out / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='not empty'):
        make(str(out), num_train=1, num_val=1, size=64)
    with pytest.raises(SystemExit) as refused:
        main([str(out), '--num-train', '1', '--num-val', '1'])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert 'not empty' in err and '--force' in err
    assert files(out) == sorted(written + ['notes.txt'])  # nothing written
    counts = make(str(out), num_train=1, num_val=1, size=64, force=True)
    assert counts == COUNTS[name]
    assert (out / 'notes.txt').read_text() == 'mine'
    assert files(out) == sorted(written + ['notes.txt'])
    main([str(out), '--num-train', '1', '--num-val', '1', '--size', '64',
          '--force'])
    assert (out / 'notes.txt').read_text() == 'mine'
    assert files(out) == sorted(written + ['notes.txt'])


@pytest.mark.parametrize('name', GENERATORS)
def test_bad_arguments_are_named(name, tmp_path, capsys):
    """Bad counts and sizes: a ValueError naming the argument from the
    function, a usage error (exit 2) from the command line; a file where
    the folder should be is refused."""
    make, main = generator(name)
    for kwargs, match in ((dict(num_train=0), 'num_train'),
                          (dict(num_val=0), 'num_val'),
                          (dict(size=8), 'size')):
        with pytest.raises(ValueError, match=match):
            make(str(tmp_path / 'bad'), **kwargs)
    for bad in (['--num-val', '0'], ['--size', '8'], ['--size', '1', '2',
                                                       '3']):
        with pytest.raises(SystemExit) as refused:
            main([str(tmp_path / 'bad'), *bad])
        assert refused.value.code == 2
        assert 'error' in capsys.readouterr().err
    assert not (tmp_path / 'bad').exists()
    (tmp_path / 'file').write_text('x')
    with pytest.raises(SystemExit):
        main([str(tmp_path / 'file')])
    assert 'not a folder' in capsys.readouterr().err


def test_python_dash_m_imports_no_toolbox(tmp_path):
    """``python -m glnet_mm.datasets.<name> OUT_DIR ...``, the documented
    command, writes the data of each generator, and the run imports no
    OpenMMLab toolbox (``-X importtime`` lists every module it imported).
    One fresh process runs the three as ``-m`` does (runpy, as
    ``__main__``): a toolbox that any of them imported would be listed."""
    needs('pycocotools')  # toy_coco's masks
    script = (
        'import runpy, sys\n'
        f'for name in {GENERATORS!r}:\n'
        f'    sys.argv = [name, {str(tmp_path)!r} + "/" + name, '
        '"--num-train", "1", "--num-val", "1", "--size", "64"]\n'
        '    runpy.run_module("glnet_mm.datasets." + name, '
        'run_name="__main__", alter_sys=True)\n')
    proc = subprocess.run(
        [sys.executable, '-X', 'importtime', '-c', script],
        cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('train images') == len(GENERATORS), proc.stdout
    for name in GENERATORS:
        assert os.listdir(tmp_path / name), name
    imported = {line.rsplit('|', 1)[-1].strip().split('.')[0]
                for line in proc.stderr.splitlines()
                if line.startswith('import time:')}
    assert 'glnet_mm' in imported and 'numpy' in imported
    assert not imported & {'mmcv', 'mmdet', 'mmseg', 'mmpretrain'}


def test_toy_run_takes_the_task():
    for args in ([], ['imagenet']):
        proc = subprocess.run(
            ['bash', os.path.join(REPO, 'tools', 'misc', 'toy_run.sh'), *args],
            capture_output=True, text=True)
        assert proc.returncode == 2 and 'usage' in proc.stderr
        assert 'detection|segmentation|classification' in proc.stderr
