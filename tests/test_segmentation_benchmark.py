"""tools/benchmark_segmentation.py end to end, on the small toy segmentor."""
import importlib
import os.path as osp
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY = osp.join(REPO, 'configs', 'segmentation',
               'upernet_glnet-toy_1xb8-600iter_toy-ade-128x128.py')


@pytest.fixture(scope='module')
def bench():
    # importable by name: the spawned measuring processes import it too
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        yield importlib.import_module('benchmark_segmentation')
    finally:
        sys.path.remove(osp.join(REPO, 'tools'))


def test_benchmark_runs_and_compares(bench, capsys):
    results = bench.main([
        '--models', f'toy={TOY}', f'toy-again={TOY}', '--baseline', 'toy',
        '--iters', '1', '--warmup', '0', '--train-batch', '2',
        '--threads', '1'
    ])
    assert set(results) == {'toy', 'toy-again'}
    for r in results.values():
        assert r['fps_512'] > r['fps_2048_slide'] > 0
        assert r['train_mem_gib'] > 0 and r['train_step_s'] > 0
    assert results['toy']['params_m'] == results['toy-again']['params_m']
    table = capsys.readouterr().out
    assert '| toy |' in table and '| toy-again |' in table
    assert 'x)' in table  # ratios against the baseline


def test_benchmark_rejects_bad_arguments(bench):
    with pytest.raises(SystemExit):
        bench.main(['--models', 'nope'])
    with pytest.raises(SystemExit):
        bench.main(['--models', f'toy={TOY}', '--baseline', 'swin-t'])
    with pytest.raises(SystemExit):
        bench.main(['--models', 'toy=/no/such/config.py'])
    with pytest.raises(SystemExit):
        bench.main(['--models', f'toy={TOY}', '--baseline', 'toy',
                    '--train-batch', '1'])
