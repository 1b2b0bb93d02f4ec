"""What ``tools/train.py`` and ``tools/test.py`` share: the toolbox a config
runs with, and the CPU path of a multi-process run.

GPU machines: the process group is initialised by mmengine (NCCL, one GPU per
process). CPU machines (no CUDA device): mmengine 0.10.7's launchers call
`torch.cuda.set_device(local_rank)` unconditionally, which fails with "Found
no NVIDIA driver"; and its default DDP wrapper passes
`device_ids=[LOCAL_RANK]`, which torch's DistributedDataParallel refuses for a
CPU module. So on CPU the tools (1) initialises the gloo process group
itself from the launcher's environment before the Runner is built (the Runner
then sees an initialised group and skips its own `init_dist`), and (2) gives
the Runner a `model_wrapper_cfg` without device ids. Nothing installed is
patched; everything else (samplers, DDP, hooks, checkpoints, evaluation) is
mmengine's.

torch's SyncBatchNorm only runs on GPU-like devices (it raises "SyncBatchNorm
expected input tensor to be on GPU ..." on CPU tensors), so a CPU multi-process
run turns every SyncBN of the config into BN (per-process statistics) and
says so in the log; GPU runs keep SyncBN, and 1-process runs get BN from
mmengine (`revert_sync_batchnorm`).
"""
import importlib
import os
import subprocess

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

TOOLBOXES = {'mmdet': 'mmdet', 'mmseg': 'mmseg', 'mmpretrain': 'mmpretrain'}
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'SyncBatchNorm', 'TorchSyncBN')


def parse_args(parser, argv=None):
    """``parser``'s arguments plus the ones both tools take (``--work-dir``,
    ``--cfg-options``, ``--launcher``, and ``--local-rank`` of
    torch.distributed.launch, which sets ``LOCAL_RANK`` as torchrun does)."""
    parser.add_argument('--work-dir', help='where logs, checkpoints and '
                        'results go (default: ./work_dirs/CONFIG_NAME)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def toolbox_of(cfg) -> str:
    """The toolbox a config trains with, from its ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in TOOLBOXES:
        raise ValueError(f'{cfg.filename}: default_scope must be one of '
                         f'{sorted(TOOLBOXES)} (it picks the toolbox), got '
                         f'{scope!r}')
    importlib.import_module(TOOLBOXES[scope])  # clear error if missing
    return scope


def replace_sync_bn(node):
    """Turn every SyncBN norm config inside ``node`` into BN, in place;
    returns how many were changed."""
    changed = 0
    if isinstance(node, dict):
        if node.get('type') in SYNC_BN_TYPES:
            node['type'] = 'BN'
            changed += 1
        for value in node.values():
            changed += replace_sync_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            changed += replace_sync_bn(value)
    return changed


def slurm_env():
    """RANK / WORLD_SIZE / LOCAL_RANK / MASTER_* from slurm's variables (as
    mmengine's slurm launcher sets them)."""
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {os.environ["SLURM_NODELIST"]} '
            '| head -n1')


def setup_cpu_distributed(cfg, launcher):
    """The CPU path of a multi-process run: gloo process group, a DDP
    wrapper without device ids, SyncBN -> BN (see the module docstring)."""
    if launcher == 'slurm':
        slurm_env()
    timeout = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout')
    kwargs = {}
    if timeout is not None:
        from datetime import timedelta
        kwargs['timeout'] = timedelta(seconds=timeout)
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo', init_method='env://',
                                **kwargs)
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    # mmengine adds device_ids=[LOCAL_RANK] unless the config gives them;
    # torch's DDP takes device_ids=None for a CPU module.
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    changed = replace_sync_bn(cfg.model)
    if changed:
        print_log(
            f'CPU run on {dist.get_world_size()} processes: {changed} SyncBN '
            'norm(s) of the config are BN here (torch SyncBatchNorm runs on '
            'GPUs only); statistics are per process', logger='current')


def runner_config(path, cfg_options=None, work_dir=None, launcher='none'):
    """``path`` as mmengine's Config with the command line's overrides, its
    toolbox checked and imported, the work dir set as the toolboxes' tools
    set it (``./work_dirs/CONFIG_NAME`` unless given), and the CPU
    multi-process path applied where no GPU is visible."""
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    toolbox_of(cfg)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = os.path.join(
            './work_dirs', os.path.splitext(os.path.basename(path))[0])
    if launcher != 'none' and not torch.cuda.is_available():
        setup_cpu_distributed(cfg, launcher)
    return cfg


def build_runner(cfg):
    """The config's runner (``runner_type``, else mmengine's Runner)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
