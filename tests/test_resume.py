"""Exact resume: a toy training killed for real (SIGKILL, after the
checkpoint of iteration/epoch N) and continued with ``--resume`` gives the
losses, final weights and final metrics of the uninterrupted run with the
same seed; the iterations before the kill repeat the uninterrupted run's
(same seed twice, same result). The toy configs as shipped: random
augmentation, dropout, mmdet's random anchor and RoI sampling.

The toy Mask R-CNN: one process (tools/train.py; the uninterrupted run
with the same steps in the test's process), resumed with the README's
``mim train mmdet ... --resume`` and its checkpoint evaluated with ``mim
test``. The toy UPerNet: two processes (tools/dist_train.sh)."""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import time

import numpy as np
import pytest

from train_utils import (DET_CONFIG, SEG_CONFIG, cfg_options_args, env,
                         probes, run_mim, seg_norms_without_bn, train,
                         train_command, train_reference_or_launch, weights,
                         write_config)

from glnet_mm.datasets.toy_ade import make_toy_ade
from glnet_mm.datasets.toy_coco import make_toy_coco

SEG_BODY = """
custom_imports = dict(imports=['glnet_mm', 'glnet_mm.checkpoint.process_wide',
    'glnet_mm.engine.hooks', 'glnet_mm.datasets.toy_ade_dataset', 'ddp_probe'],
    allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook'),
                dict(type='ProbeHook', pause_at='iter_2.pth')]
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root={root!r}))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root={root!r}))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=4, val_interval=4)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2),
                     visualization=dict(interval=1000))
randomness = dict(seed=0, deterministic=True)
"""
DET_BODY = """
custom_imports = dict(imports=['glnet_mm', 'glnet_mm.checkpoint.process_wide',
    'glnet_mm.engine.hooks', 'ddp_probe'], allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook'),
                dict(type='ProbeHook', pause_at='epoch_1.pth')]
model = dict(test_cfg=dict(rcnn=dict(score_thr=0.)))
ann = {root!r} + '/annotations/instances_val.json'
train_dataloader = dict(dataset=dict(data_root={root!r} + '/'))
val_dataloader = dict(dataset=dict(data_root={root!r} + '/'))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=ann)
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=2, val_interval=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
randomness = dict(seed=0, deterministic=True)
"""
UNPAUSED = {'custom_hooks.1.pause_at': None}
NO_PAUSE = cfg_options_args(UNPAUSED)


def train_and_kill(config, work_dir, nproc=1, timeout=600):
    """Train until the probe pauses after the chosen checkpoint, then
    SIGKILL the process (with torchrun: its whole process group)."""
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, 'stdout.log'), 'w') as log:
        proc = subprocess.Popen(
            train_command(config, nproc, '--work-dir', str(work_dir)),
            env=env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    markers = [osp.join(work_dir, f'paused_rank{r}') for r in range(nproc)]
    start = time.time()
    try:
        while not all(osp.exists(m) and os.path.getsize(m)
                      for m in markers):
            assert proc.poll() is None, open(
                osp.join(work_dir, 'stdout.log')).read()[-3000:]
            assert time.time() - start < timeout
            time.sleep(0.2)
    finally:
        # every worker (torchrun gives each its own session), then the
        # launcher's process group
        for m in markers:
            if osp.exists(m) and os.path.getsize(m):
                with open(m) as f:
                    pid = int(f.read())
                if pid != proc.pid:
                    os.kill(pid, signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


def losses(record):
    return np.array([t['losses']['loss'] for t in record['train']])


def check_exact_resume(tmp_path, config, kill_at, total, nproc=1,
                       resume=None):
    """Train ``config`` uninterrupted and killed after ``kill_at``
    iterations, resume the killed run (with ``resume(work_dir)`` if given,
    else the launcher's ``--resume``), compare; the resumed run's log and
    the final metrics."""
    full, cut = tmp_path / 'full', tmp_path / 'cut'
    train_reference_or_launch(config, full, nproc, UNPAUSED)
    train_and_kill(config, cut, nproc)
    with open(cut / 'probe_rank0_paused.json') as f:
        before = json.load(f)
    if resume:
        log = resume(cut)
    else:
        log = train(config, cut, nproc, '--resume', *NO_PAUSE)
    assert 'resumed' in log
    after, ref = probes(cut)[0], probes(full)[0]  # rank 0
    a, b, r = losses(before), losses(after), losses(ref)
    print('uninterrupted', r, '\nkilled', a, '\nresumed', b)
    assert len(a) == kill_at and len(a) + len(b) == len(r) == total
    # same seed twice: the same iterations before the kill
    np.testing.assert_array_equal(a, r[:kill_at])
    # resumed: the same iterations after it
    np.testing.assert_allclose(b, r[kill_at:], rtol=1e-6, atol=0)
    name = open(full / 'last_checkpoint').read().strip()
    w_ref = weights(name)
    w_res = weights(open(cut / 'last_checkpoint').read().strip())
    assert osp.basename(name) == osp.basename(
        open(cut / 'last_checkpoint').read().strip())
    diff = max((w_ref[k].float() - w_res[k].float()).abs().max().item()
               for k in w_ref)
    print('max |weight difference|', diff)
    assert diff <= 1e-6
    assert ref['metrics'] and after['metrics'][-1].keys() == ref[
        'metrics'][-1].keys()
    assert after['metrics'][-1] == pytest.approx(ref['metrics'][-1], abs=1e-6)
    return log, ref['metrics'][-1]


def test_toy_configs_carry_the_rng_state_hook():
    from mmengine.config import Config
    for path in (SEG_CONFIG, DET_CONFIG):
        cfg = Config.fromfile(path)
        assert dict(type='RNGStateHook') in cfg.custom_hooks
        assert 'glnet_mm.engine' in cfg.custom_imports.imports  # its hooks


def test_detection_resumed_by_mim_is_exact(tmp_path):
    """The toy Mask R-CNN, 2 epochs of 2 iterations, killed after epoch 1,
    resumed by ``mim train mmdet CONFIG --resume`` (mmdet's own train
    script, as the README's commands); then ``mim test`` evaluates the
    final checkpoint with CocoMetric and saves the drawn predictions."""
    root = str(tmp_path / 'data')
    make_toy_coco(root, num_train=8, num_val=2)
    config = write_config(tmp_path / 'cfg.py', DET_CONFIG,
                          DET_BODY.format(root=root))

    def mim_resume(work):
        assert (work / 'epoch_1.pth').is_file()  # written before the kill
        return run_mim('train', 'mmdet', config, '--work-dir', str(work),
                       '--resume', *NO_PAUSE)

    log, metrics = check_exact_resume(tmp_path, config, kill_at=2, total=4,
                                      resume=mim_resume)
    assert 'coco/bbox_mAP' in metrics
    assert 'resumed epoch: 1, iter: 2' in log
    log = log.replace('  ', ' ')
    assert 'Epoch(train) [1]' not in log and 'Epoch(train) [2][2/2]' in log
    assert 'coco/bbox_mAP' in log
    with open(tmp_path / 'cut' / 'last_checkpoint') as f:
        checkpoint = f.read().strip()
    assert checkpoint.endswith('epoch_2.pth')
    show_dir = tmp_path / 'vis'
    log = run_mim('test', 'mmdet', config, '--checkpoint', checkpoint,
                  '--work-dir', str(tmp_path / 'test'), '--show-dir',
                  str(show_dir))
    assert 'coco/segm_mAP' in log
    assert len(glob.glob(osp.join(show_dir, '*.png'))) == 2


def test_segmentation_two_processes_killed_and_resumed_is_exact(tmp_path):
    """The toy UPerNet on 2 processes (torchrun killed with its workers):
    each rank gets its own generator states back; losses, weights and the
    metrics are exact. GLNet's norms are LN and the heads' GN here: BN's
    running statistics are per process on CPU processes (SyncBN becomes BN,
    and mmengine's DDP does not broadcast buffers), so after a resume rank 1
    would validate its half of the set with rank 0's statistics, which the
    checkpoint holds (measured: mIoU 8.92 resumed vs 8.41 uninterrupted).
    With SyncBN, on GPUs, the statistics are the same on every rank."""
    root = str(tmp_path / 'ade')
    make_toy_ade(root, num_train=8, num_val=2)
    body = SEG_BODY.format(root=root).replace('batch_size=4', 'batch_size=2')
    body += seg_norms_without_bn()
    config = write_config(tmp_path / 'cfg.py', SEG_CONFIG, body)
    _, metrics = check_exact_resume(tmp_path, config, kill_at=2, total=4,
                                    nproc=2)
    assert 'mIoU' in metrics
