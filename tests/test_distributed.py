"""Multi-process training through ``tools/dist_train.sh``: real torch DDP
(gloo on this CPU machine) under mmengine's Runner, against one process with
the same total batch.

Comparison set-up (what makes the two runs the same computation): same seed,
``deterministic=True``, no random augmentation, no dropout, and norms that do
not depend on the batch split (LN in GLNet's stem/downsampling, GN in the
mmseg heads). Then 2 processes of batch b see exactly the samples of 1
process of batch 2b, rank r taking every other one (mmengine's samplers).
"""
import os
import os.path as osp
import pickle
import re
import subprocess

import numpy as np
import pytest

from conftest import load_tool, needs
from train_utils import (DET_CONFIG, REPO, SEG_CONFIG, checkpoints, env,
                         probes, seg_norms_without_bn, train,
                         train_reference_or_launch, weights,
                         weights_and_meta, write_config)

from glnet_mm.datasets.toy_ade import make_toy_ade

SEG_ITERS = 6
SEG_BODY = """
custom_imports = dict(imports=['glnet_mm', 'glnet_mm.checkpoint.process_wide',
    'glnet_mm.engine.hooks', 'glnet_mm.datasets.toy_ade_dataset', 'ddp_probe'],
    allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook'), dict(type='ProbeHook')]
pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')]
train_dataloader = dict(batch_size={batch}, num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root={root!r}, pipeline=pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
    dataset=dict(data_root={root!r}, pipeline=pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters={iters}, val_interval={iters})
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval={iters}),
                     visualization=dict(interval=1000))
randomness = dict(seed=0, deterministic=True)
""" + seg_norms_without_bn(dropout_ratio=0.)

DET_STEPS = 4
DET_BODY = """
custom_imports = dict(imports=['glnet_mm', 'glnet_mm.checkpoint.process_wide',
    'glnet_mm.engine.hooks', 'ddp_probe'], allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook'), dict(type='ProbeHook')]
model = dict(
    # take every candidate: no random subsampling of anchors and RoIs
    train_cfg=dict(rpn=dict(sampler=dict(num=100000)),
                   rcnn=dict(sampler=dict(num=100000))),
    # an untrained detector's scores are low: keep its boxes for CocoMetric
    test_cfg=dict(rcnn=dict(score_thr=0.)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs')]
ann = {root!r} + '/annotations/instances_val.json'
train_dataloader = dict(batch_size=1,
    dataset=dict(data_root={root!r} + '/', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root={root!r} + '/'))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=ann)
test_evaluator = val_evaluator
optim_wrapper = dict(accumulative_counts={accumulate})
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = []
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
randomness = dict(seed=0, deterministic=True)
"""


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """The toy ADE data (ade/); detection_pair adds the toy COCO (coco/)."""
    root = tmp_path_factory.mktemp('ddp_data')
    make_toy_ade(str(root / 'ade'), num_train=8, num_val=4)
    return root


def run_pair(tmp_path, base, body, **fmt):
    """The same config trained by 1 process of batch 2b and by 2 processes
    of batch b; returns both work dirs."""
    batch = fmt.pop('batch')
    works = {}
    for nproc, b in ((1, 2 * batch), (2, batch)):
        config = write_config(tmp_path / f'cfg{nproc}.py', base,
                              body.format(batch=b, **fmt))
        works[nproc] = tmp_path / f'work{nproc}'
        train_reference_or_launch(config, works[nproc], nproc)
    return works


def check_shards_and_checkpoint(works, iters, num_val):
    single, = probes(works[1])
    ranks = probes(works[2])
    assert [r['rank'] for r in ranks] == [0, 1]
    assert all(r['world_size'] == 2 for r in ranks)
    assert len(single['train']) == iters
    for it in range(iters):
        seen = [set(r['train'][it]['paths']) for r in ranks]
        # each rank its own shard; together the single process's batch
        assert not seen[0] & seen[1]
        assert seen[0] | seen[1] == set(single['train'][it]['paths'])
    # validation: each rank a different half, metrics over the whole set
    val = [set(r['val_paths']) for r in ranks]
    assert not val[0] & val[1] and len(val[0] | val[1]) == num_val
    assert set(single['val_paths']) == val[0] | val[1]
    # one checkpoint file, written once (by rank 0)
    assert [osp.basename(p) for p in checkpoints(works[2])] == [
        osp.basename(p) for p in checkpoints(works[1])]
    assert len(checkpoints(works[2])) == 1
    # the generator states of both ranks are in it (RNGStateHook)
    assert len(weights_and_meta(checkpoints(works[2])[0])['rng_states']) == 2
    return single, ranks


def loss_table(single, ranks, key='loss'):
    one = np.array([t['losses'][key] for t in single['train']])
    two = np.array([[t['losses'][key] for t in r['train']] for r in ranks])
    return one, two.mean(0)


BN_STATS = ('running_mean', 'running_var', 'num_batches_tracked')


def weight_diff(works, skip_bn_stats=False):
    """Largest absolute difference between the final weights of the two
    runs (BN running statistics left out where they see different numbers
    of forwards)."""
    a = weights(checkpoints(works[1])[0])
    b = weights(checkpoints(works[2])[0])
    assert a.keys() == b.keys()
    keys = [k for k in a if not (skip_bn_stats and k.endswith(BN_STATS))]
    assert len(keys) > 100
    return max((a[k].float() - b[k].float()).abs().max().item()
               for k in keys)


def test_segmentation_two_processes_match_one(data, tmp_path):
    """UPerNet toy: 2 x batch 2 == 1 x batch 4. mmseg's cross-entropy is a
    mean over all pixels, so the batch loss is the mean of the ranks'
    losses, and DDP's averaged gradient is the single process's gradient."""
    needs('mmseg')
    works = run_pair(tmp_path, SEG_CONFIG, SEG_BODY, batch=2,
                     root=str(data / 'ade'), iters=SEG_ITERS)
    single, ranks = check_shards_and_checkpoint(works, SEG_ITERS, 4)
    one, two = loss_table(single, ranks)
    print('seg losses 1x4', one, '2x2', two)
    assert np.abs(one - two).max() < 1e-5 * np.abs(one).max()
    assert one[-1] < one[0]
    diff = weight_diff(works)
    print('seg max |weight difference|', diff)
    assert diff < 1e-5
    m1, m2 = single['metrics'][-1], ranks[0]['metrics'][-1]
    assert m1.keys() == m2.keys() and 'mIoU' in m1
    assert abs(m1['mIoU'] - m2['mIoU']) <= 0.02  # percent


@pytest.fixture(scope='module')
def detection_pair(data, tmp_path_factory):
    """The toy Mask R-CNN trained one epoch (8 images) by 1 process of 1
    image accumulating 2 iterations per step and by 2 processes of 1 image
    (the same total batch of 2 per optimizer step); their work dirs."""
    needs('mmdet')
    needs('pycocotools')
    from glnet_mm.datasets.toy_coco import make_toy_coco
    make_toy_coco(str(data / 'coco'), num_train=2 * DET_STEPS, num_val=4)
    tmp = tmp_path_factory.mktemp('detection_pair')
    works = {}
    for nproc, accumulate in ((1, 2), (2, 1)):
        config = write_config(tmp / f'cfg{nproc}.py', DET_CONFIG,
                              DET_BODY.format(root=str(data / 'coco'),
                                              accumulate=accumulate))
        works[nproc] = tmp / f'work{nproc}'
        train_reference_or_launch(config, works[nproc], nproc)
    return works


def test_detection_two_processes_match_one(detection_pair):
    """Mask R-CNN toy, 2 processes x 1 image against 1 process x 1 image
    accumulating 2 iterations per step. Mask R-CNN divides each process's
    losses by that process's own number of sampled anchors, RoIs and
    positive masks (mmdet's avg_factor), so a DDP step is the mean of
    per-process means: with 2b images on one process it is a different loss
    (measured: 2-8 % apart). With one image per process, accumulation over
    the same image pairs (rank r takes images 2k + r, as the single
    process's iterations 2k and 2k + 1) is the same computation. BN stays
    BN: one image per forward in both runs."""
    works = detection_pair
    single, = probes(works[1])
    ranks = probes(works[2])
    assert [r['rank'] for r in ranks] == [0, 1]
    assert len(single['train']) == 2 * DET_STEPS
    for step in range(DET_STEPS):
        seen = [r['train'][step]['paths'] for r in ranks]
        assert seen[0] != seen[1]  # each rank its own shard
        assert seen[0] + seen[1] == (single['train'][2 * step]['paths'] +
                                     single['train'][2 * step + 1]['paths'])
    val = [set(r['val_paths']) for r in ranks]
    assert not val[0] & val[1] and len(val[0] | val[1]) == 4
    assert [osp.basename(p) for p in checkpoints(works[2])] == ['epoch_1.pth']
    assert len(weights_and_meta(checkpoints(works[2])[0])['rng_states']) == 2
    one = np.array([t['losses']['loss'] for t in single['train']])
    two = np.array([[t['losses']['loss'] for t in r['train']] for r in ranks])
    two = two.T.reshape(-1)  # image order: step 0 rank 0, rank 1, step 1...
    print('det losses 1x1 accumulating 2', one, '2x1', two)
    assert np.abs(one - two).max() < 1e-4 * np.abs(one).max()
    # BN running statistics: 8 forwards on one process, 4 per rank
    diff = weight_diff(works, skip_bn_stats=True)
    print('det max |weight difference|', diff)
    assert diff < 1e-4
    m1, m2 = single['metrics'][-1], ranks[0]['metrics'][-1]
    print('det metrics', m1, m2)
    assert m1.keys() == m2.keys() and 'coco/bbox_mAP' in m1
    for key in m1:
        assert abs(m1[key] - m2[key]) <= 0.01, key


CLS_CONFIG = osp.join(osp.dirname(SEG_CONFIG), '..', 'classification',
                      'glnet-toy_1xb64-20e_toy-shapes.py')
CLS_BODY = """
custom_imports = dict(imports=['glnet_mm', 'glnet_mm.checkpoint.process_wide',
    'glnet_mm.engine.hooks', 'ddp_probe'], allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook'), dict(type='ProbeHook')]
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root={root!r}))
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root={root!r}))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = []
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
"""


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    from glnet_mm.datasets.toy_imagefolder import make_toy_imagefolder
    root = str(tmp_path_factory.mktemp('shapes') / 'toy')
    make_toy_imagefolder(root, num_train=2, num_val=1)
    return root


def test_classification_on_two_processes(shapes, tmp_path):
    """The mmpretrain toy config through dist_train.sh (toolbox from its
    default_scope): 2 ranks, disjoint shards, Accuracy over the whole
    validation set, one checkpoint."""
    needs('mmpretrain')
    config = write_config(tmp_path / 'cfg.py', CLS_CONFIG,
                          CLS_BODY.format(root=shapes))
    log = train(config, tmp_path / 'work', 2)
    assert 'accuracy/top1' in log
    ranks = probes(tmp_path / 'work')
    assert [r['rank'] for r in ranks] == [0, 1]
    seen = [{p for t in r['train'] for p in t['paths']} for r in ranks]
    assert seen[0] and not seen[0] & seen[1]
    val = [set(r['val_paths']) for r in ranks]
    assert not val[0] & val[1]
    assert 'accuracy/top1' in ranks[0]['metrics'][-1]
    assert [osp.basename(p) for p in checkpoints(tmp_path / 'work')] == [
        'epoch_1.pth']


def test_launch_scripts_usage():
    for script in ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh',
                   'slurm_test.sh'):
        proc = subprocess.run(['bash', osp.join(REPO, 'tools', script)],
                              capture_output=True, text=True)
        assert proc.returncode == 2 and 'usage' in proc.stderr, script


@pytest.fixture(scope='module')
def toy_detector(detection_pair):
    """A trained toy Mask R-CNN: the config of the 2-process run of
    ``detection_pair`` (1 image per iteration, no accumulation) and its
    checkpoint."""
    work = detection_pair[2]
    checkpoint, = checkpoints(work)
    return str(work.parent / 'cfg2.py'), checkpoint


FAKE_SRUN = """#!/usr/bin/env bash
# srun for one task on this machine: record the arguments, set slurm's
# variables, run the command after srun's own options (with RECORD_ONLY set:
# only record).
printf '%s\\n' "$@" > "$SRUN_LOG"
[ -z "${RECORD_ONLY:-}" ] || exit 0
while [[ "$1" == -* ]]; do
    case "$1" in -p) shift 2 ;; *) shift ;; esac
done
SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0 SLURM_NODELIST=localhost \\
    MASTER_ADDR=127.0.0.1 MASTER_PORT=$PORT exec "$@"
"""


def run_script(args, tmp, out=None, **more):
    """``bash tools/<script> ARGS`` from the repo root with ``srun`` a
    stand-in (FAKE_SRUN) on the PATH; its output, the arguments srun got,
    and what ``--out`` saved, if given: (metrics, predictions)."""
    bin_dir = tmp / 'bin'
    if not bin_dir.is_dir():
        bin_dir.mkdir()
        (bin_dir / 'srun').write_text(FAKE_SRUN)
        (bin_dir / 'srun').chmod(0o755)
    variables = env()
    variables.update(PATH=f"{bin_dir}{os.pathsep}{variables['PATH']}",
                     SRUN_LOG=str(tmp / 'srun_args'), GPUS='1', **more)
    args = [osp.join(REPO, 'tools', args[0]), *map(str, args[1:])]
    if out:
        args += ['--out', str(out)]
    proc = subprocess.run(['bash', *args], cwd=REPO, env=variables,
                          capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    srun_args = ((tmp / 'srun_args').read_text().split('\n')
                 if 'slurm' in args[0] else None)
    if out is None:
        return log, srun_args, None
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    return log, srun_args, (dict(re.findall(r'(coco/\w+): (-?[\d.]+)', log)),
                            predictions)


@pytest.fixture(scope='module')
def slurm_test(toy_detector, tmp_path_factory):
    """slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT --out FILE
    through the srun stand-in, which runs its one task here as srun does
    (slurm's variables set: tools/test.py --launcher slurm, gloo on the
    CPU): its log, srun's arguments and (metrics, predictions)."""
    config, checkpoint = toy_detector
    tmp = tmp_path_factory.mktemp('slurm_test')
    return run_script(['slurm_test.sh', 'gpu', 'glnet', config, checkpoint],
                      tmp, out=tmp / 'one.pkl')


def test_dist_test_two_processes_match_one(toy_detector, slurm_test,
                                           tmp_path):
    """tools/dist_test.sh with 2 CPU processes (each evaluates 2 of the 4
    validation images) reports the same bbox and segm mAP as one process
    (slurm_test.sh's one task: tools/test.py), from the same predictions,
    which --out saves."""
    config, checkpoint = toy_detector
    _, _, (one, preds1) = slurm_test
    _, _, (two, preds2) = run_script(
        ['dist_test.sh', config, checkpoint, 2], tmp_path,
        out=tmp_path / 'two.pkl')
    print('1 process', one, '2 processes', two)
    assert 'coco/bbox_mAP' in one and 'coco/segm_mAP' in one
    assert one == two
    assert len(preds1) == len(preds2) == 4
    for a, b in zip(preds1, preds2):
        assert a['img_path'] == b['img_path']
        for key in ('bboxes', 'scores', 'labels'):
            np.testing.assert_allclose(np.asarray(a['pred_instances'][key]),
                                       np.asarray(b['pred_instances'][key]),
                                       rtol=1e-5, atol=1e-4)


def test_test_py_refuses_to_overwrite(toy_detector, tmp_path):
    """tools/test.py --out never overwrites a file: it refuses while it
    reads the command line, before a runner is built (so in this process:
    no fresh one needed)."""
    config, checkpoint = toy_detector
    out = tmp_path / 'mine.pkl'
    out.write_text('keep me')
    with pytest.raises(FileExistsError, match='not overwriting'):
        load_tool('test').main([config, checkpoint, '--out', str(out),
                                '--work-dir', str(tmp_path / 'work')])
    assert out.read_text() == 'keep me'
    assert not (tmp_path / 'work').exists()


def test_slurm_scripts_take_openmmlab_arguments(toy_detector, slurm_test,
                                                tmp_path):
    """slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR and slurm_test.sh
    PARTITION JOB_NAME CONFIG CHECKPOINT, as mmdet's, give srun the
    OpenMMLab command; the old slurm_train.sh CONFIG N form gives srun the
    same command. slurm_test.sh's task ran (the ``slurm_test`` fixture):
    tools/test.py read slurm's variables (one task, gloo on the CPU); the
    launcher code is the one tools/train.py runs
    (glnet_mm.apis.runner.runner_config), so the training commands are only
    recorded here."""
    config, checkpoint = toy_detector
    log, srun_args, _ = slurm_test
    assert srun_args[:4] == ['-p', 'gpu', '--job-name=glnet', '--gres=gpu:1']
    assert '--ntasks=1' in srun_args and checkpoint in srun_args
    assert srun_args[-3:-1] == ['--launcher', 'slurm']
    assert ('Distributed launcher: slurm' in log
            or "launcher='slurm'" in log)
    assert 'coco/bbox_mAP' in log

    work = tmp_path / 'work'
    _, train_srun, _ = run_script(['slurm_train.sh', 'gpu', 'glnet', config,
                                   work], tmp_path, RECORD_ONLY='1')
    assert train_srun[:4] == ['-p', 'gpu', '--job-name=glnet',
                              '--gres=gpu:1']
    assert '--ntasks=1' in train_srun
    script = train_srun.index(osp.join(REPO, 'tools', 'train.py'))
    assert train_srun[script + 1:] == [config, '--work-dir', str(work),
                                      '--launcher', 'slurm', '']
    # the old form: srun gets what the form above gave it
    log, old_args, _ = run_script(['slurm_train.sh', config, 1,
                                   '--work-dir', work], tmp_path,
                                  PARTITION='gpu', JOB_NAME='glnet',
                                  RECORD_ONLY='1')
    assert 'old form' in log
    assert old_args == train_srun


def test_det_inferencer_on_a_trained_checkpoint(toy_detector, data, tmp_path):
    """The README's inference lines: mmdet's DetInferencer with a GLNet
    config and a checkpoint of it (the config's custom_imports register
    GLNet) predicts and draws an image."""
    from mmdet.apis import DetInferencer
    config, checkpoint = toy_detector
    image = sorted((data / 'coco' / 'val').glob('*.png'))[0]
    inferencer = DetInferencer(model=config, weights=checkpoint,
                               device='cpu')
    result = inferencer(str(image), out_dir=str(tmp_path / 'out'),
                        return_datasamples=True)
    prediction, = result['predictions']
    assert prediction.pred_instances.bboxes.shape[-1] == 4
    assert len(list((tmp_path / 'out' / 'vis').glob('*'))) == 1
