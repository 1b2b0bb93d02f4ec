"""GLNet under torch DistributedDataParallel (2 CPU processes, gloo) in the
settings that break other backbones under DDP: frozen stages (parameters
without grad), activation checkpointing, learned slots, the slot
visualisation hook point, every ablation config (branches not built), output
subsets, token-attention stages. All with DDP's default
``find_unused_parameters=False``: a parameter without a gradient would make
DDP raise at the next iteration. And SyncBN: reverted to BN in 1-process
runs; on CPU processes, what torch allows (see below)."""
import glob
import os
import os.path as osp
import socket
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from torch.nn.parallel import DistributedDataParallel as DDP

from conftest import needs

from glnet_mm import GLNet

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SMALL = dict(depths=[1, 1, 2, 1], channels=[32, 32, 64, 64])


def ablation_arches():
    """The arch dict of every ablation config, made small."""
    arches = {}
    for path in sorted(glob.glob(osp.join(REPO, 'configs', 'classification',
                                          'ablations', '*.py'))):
        arch = dict(Config.fromfile(path).model.backbone.arch)
        arch.pop('_delete_', None)
        arches[osp.basename(path).split('_')[0]] = dict(arch, **SMALL)
    return arches


def variants():
    out = {name: dict(arch=arch) for name, arch in ablation_arches().items()}
    out.update({
        'frozen_stages=2': dict(arch=dict(base='stl', **SMALL),
                                frozen_stages=2),
        'with_cp': dict(arch=dict(base='stl', **SMALL), with_cp=True),
        'with_cp+frozen_stages=1': dict(arch=dict(base='stl', **SMALL),
                                        with_cp=True, frozen_stages=1),
        'slot_init=param': dict(arch=dict(base='stl_paramslot', **SMALL)),
        'out_indices=(1, 2, 3)': dict(arch=dict(base='stl', **SMALL),
                                      out_indices=(1, 2, 3)),
        '4g-style (mha_nchw, layer scale)': dict(
            arch=dict(base='16g', depths=[1, 1, 2, 1],
                      channels=[32, 32, 64, 64])),
        'cluster_weights hooks': dict(arch=dict(base='stl', **SMALL),
                                      hook=True),
    })
    return out


def train_variant(rank, name, spec):
    spec = dict(spec)
    hook = spec.pop('hook', False)
    torch.manual_seed(0)  # same initial weights on both ranks
    model = GLNet(**spec)
    model.init_weights()
    seen = []
    if hook:
        for m in model.modules():
            if getattr(m, 'cluster_weights', None) is not None:
                m.cluster_weights.register_forward_hook(
                    lambda mod, args, out: seen.append(out.detach()))
    ddp = DDP(model)  # find_unused_parameters=False
    assert not ddp.find_unused_parameters
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(100 + rank)  # a shard per rank
    for _ in range(2):  # DDP reports an unused parameter at the next step
        x = torch.randn(2, 3, 64, 48, generator=gen)
        loss = sum(o.float().pow(2).mean() for o in ddp(x))
        opt.zero_grad()
        loss.backward()
        trainable = [p for p in model.parameters() if p.requires_grad]
        missing = [n for n, p in model.named_parameters()
                   if p.requires_grad and p.grad is None]
        assert not missing, f'{name}: no gradient for {missing[:5]}'
        opt.step()
    assert trainable
    if spec.get('frozen_stages'):
        assert any(not p.requires_grad for p in model.parameters())
    if hook:
        assert seen and all(torch.isfinite(w).all() for w in seen)
    # the replicas stay identical: gradients were averaged across ranks
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    both = [torch.empty_like(flat) for _ in range(2)]
    dist.all_gather(both, flat)
    assert torch.equal(both[0], both[1]), name


def sync_bn_forward():
    """A GLNet with SyncBN run on this process's CPU tensors: what torch
    does in a multi-process group ('ran', or its ValueError)."""
    model = GLNet(dict(base='stl', **SMALL), norm_cfg=dict(type='SyncBN'))
    try:
        model(torch.randn(2, 3, 32, 32))
        return 'ran'
    except ValueError as e:
        return str(e)


def worker(rank, port, names, results):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # a failing variant on one rank must not leave the other waiting in a
    # collective for gloo's default 30 minutes
    dist.init_process_group('gloo', rank=rank, world_size=2,
                            timeout=timedelta(seconds=120))
    specs = variants()
    try:
        results[(rank, 'SyncBN')] = sync_bn_forward()
        for name in names:
            try:
                train_variant(rank, name, specs[name])
                results[(rank, name)] = 'ok'
            except Exception as e:  # report every variant, not the first
                results[(rank, name)] = f'{type(e).__name__}: {e}'
                raise
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def two_processes():
    """One 2-process gloo group (spawned once for both tests below): the
    SyncBN forward, then every variant's training; {(rank, name): 'ok' or
    what went wrong}."""
    needs('mmpretrain')  # the ablation configs' base
    names = sorted(variants())
    with mp.Manager() as manager:
        results = manager.dict()
        ctx = mp.start_processes(worker, args=(free_port(), names, results),
                                 nprocs=2, join=False, start_method='spawn')
        try:
            while not ctx.join():
                pass
        except Exception:
            pass
        return names, dict(results)


def test_ddp_variants_without_find_unused_parameters(two_processes):
    names, results = two_processes
    assert len(names) >= 20
    results = {k: v for k, v in results.items() if k[1] != 'SyncBN'}
    failed = {k: v for k, v in results.items() if v != 'ok'}
    assert not failed, failed
    assert len(results) == 2 * len(names), sorted(set(names) - {
        n for _, n in results})


def test_sync_bn_one_process_reverts_to_bn():
    """mmengine's Runner calls revert_sync_batchnorm in a non-distributed
    run: GLNet's SyncBN layers become BN and the model runs."""
    model = GLNet(dict(base='stl', **SMALL), norm_cfg=dict(type='SyncBN'))
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    model = revert_sync_batchnorm(model)
    assert not any(isinstance(m, torch.nn.SyncBatchNorm)
                   for m in model.modules())
    model.train()
    out = model(torch.randn(2, 3, 32, 32))
    sum(o.sum() for o in out).backward()


@pytest.mark.parametrize('config', [
    'detection/mask-rcnn_glnet-stl_fpn_1x_coco.py',
    'detection/cascade-mask-rcnn_glnet-4g_fpn_4conv1fc-giou_ms-crop-3x_coco.py',
    'segmentation/upernet_glnet-stl_8xb2-160k_ade20k-512x512.py',
])
def test_cpu_launcher_turns_sync_bn_into_bn(config):
    """torch's SyncBatchNorm refuses CPU tensors in a multi-process run, so
    the CPU path of tools/train.py and tools/test.py
    (glnet_mm.apis.runner) turns the config's SyncBN into BN; GPUs keep
    it."""
    from glnet_mm.apis import runner as train
    needs('mmdet' if config.startswith('detection') else 'mmseg')
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    assert 'SyncBN' in cfg.pretty_text
    assert train.replace_sync_bn(cfg.model) >= 1
    assert 'SyncBN' not in str(cfg.model)
    assert train.toolbox_of(cfg) == (
        'mmdet' if config.startswith('detection') else 'mmseg')
    cfg.default_scope = None
    with pytest.raises(ValueError, match='default_scope'):
        train.toolbox_of(cfg)


def test_sync_bn_on_cpu_processes_is_refused_by_torch(two_processes):
    """The precise CPU limitation: in a 2-process gloo group torch's
    SyncBatchNorm raises on CPU tensors (so on CPU the launcher uses BN).
    If a torch release lifts it, this test says so."""
    _, results = two_processes
    assert {(0, 'SyncBN'), (1, 'SyncBN')} <= results.keys(), results
    refused = [results[(rank, 'SyncBN')] for rank in (0, 1)]
    assert all('SyncBatchNorm expected input tensor to be on GPU' in v
               for v in refused), refused
