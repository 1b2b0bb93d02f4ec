"""The toy-data generators share one command line and one output guard, and
each imports only what it needs (no OpenMMLab toolbox); the toy runs have
one entry, the task as its argument."""
import importlib
import os
import subprocess
import sys

import pytest
from conftest import REPO

GENERATORS = ('toy_coco', 'toy_ade', 'toy_imagefolder')


@pytest.mark.parametrize('name', GENERATORS)
def test_one_command_line_and_guard(name, tmp_path, capsys):
    main = importlib.import_module(f'glnet_mm.datasets.{name}').main
    out = tmp_path / 'data'
    main([str(out), '--num-train', '1', '--num-val', '1', '--size', '64'])
    assert 'train images' in capsys.readouterr().out
    written = sorted(os.listdir(out))
    (out / 'notes.txt').write_text('mine')
    with pytest.raises(SystemExit):
        main([str(out), '--num-train', '1', '--num-val', '1'])
    assert 'not empty' in capsys.readouterr().err
    main([str(out), '--num-train', '1', '--num-val', '1', '--size', '64',
          '--force'])
    assert (out / 'notes.txt').read_text() == 'mine'
    assert sorted(os.listdir(out)) == sorted(written + ['notes.txt'])
    for bad in (['--num-val', '0'], ['--size', '8'], ['--size', '1', '2',
                                                       '3']):
        with pytest.raises(SystemExit):
            main([str(tmp_path / 'bad'), *bad])
        assert 'error' in capsys.readouterr().err
    (tmp_path / 'file').write_text('x')
    with pytest.raises(SystemExit):
        main([str(tmp_path / 'file')])
    assert 'not a folder' in capsys.readouterr().err


@pytest.mark.parametrize('name', GENERATORS)
def test_python_dash_m_imports_no_toolbox(name, tmp_path):
    """``python -m glnet_mm.datasets.<name> OUT_DIR ...``, the documented
    command, writes the data, and the whole run imports no OpenMMLab
    toolbox (``-X importtime`` lists every module it imported)."""
    out = tmp_path / 'data'
    proc = subprocess.run(
        [sys.executable, '-X', 'importtime', '-m', f'glnet_mm.datasets.{name}',
         str(out), '--num-train', '1', '--num-val', '1', '--size', '64'],
        cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'train images' in proc.stdout and os.listdir(out)
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
