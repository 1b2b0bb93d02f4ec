"""Helpers of the toy training tests: write a derived toy config, run
``tools/train.py`` / ``tools/dist_train.sh`` / ``mim`` in fresh processes
(or tools/train.py's steps in this one), read what :mod:`ddp_probe` or the
run's scalars recorded."""
import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys


TESTS = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(TESTS)
DET_CONFIG = osp.join(REPO, 'configs', 'detection',
                      'mask-rcnn_glnet-toy_fpn_1xb4-12e_toy-coco.py')
SEG_CONFIG = osp.join(REPO, 'configs', 'segmentation',
                      'upernet_glnet-toy_1xb8-600iter_toy-ade-128x128.py')


def seg_norms_without_bn(**heads):
    """Config lines for the toy UPerNet: GLNet's norms LN, the heads' GN
    (and ``heads`` options for both heads). Its computation then does not
    depend on how a batch is split over processes: BN's running statistics
    are per process on CPU processes (SyncBN becomes BN there)."""
    extra = ''.join(f', {k}={v!r}' for k, v in heads.items())
    return ("gn = dict(type='GN', num_groups=8, requires_grad=True)\n"
            "model = dict(backbone=dict(norm_cfg=dict(type='LN2d', "
            "eps=1e-6)),\n"
            f"             decode_head=dict(norm_cfg=gn{extra}),\n"
            f"             auxiliary_head=dict(norm_cfg=gn{extra}))\n")


def write_config(path, base, body):
    """A config file inheriting ``base`` plus the lines of ``body``."""
    with open(path, 'w') as f:
        f.write(f'_base_ = {base!r}\n{body}\n')
    return str(path)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, TESTS]),
                PYTHONHASHSEED='0', OMP_NUM_THREADS='1',
                PYTHON=sys.executable, PORT=str(free_port()))


def train_command(config, nproc, *args):
    if nproc == 1:
        return [sys.executable, osp.join(REPO, 'tools', 'train.py'), config,
                *args]
    return ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config,
            str(nproc), *args]


def train(config, work_dir, nproc=1, *args, timeout=900):
    proc = subprocess.run(
        train_command(config, nproc, '--work-dir', str(work_dir), *args),
        cwd=REPO, env=env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def cfg_options_args(options):
    """``options`` ({key: value}) as command-line ``--cfg-options``."""
    return ['--cfg-options', *(f'{k}={v}' for k, v in options.items())]


def train_reference_or_launch(config, work_dir, nproc, cfg_options=None):
    """One process: the reference run, in this process (:func:`train_here`,
    one thread as each rank); ``nproc`` processes: tools/dist_train.sh
    (:func:`train`). ``cfg_options`` merged either way."""
    if nproc == 1:
        train_here(config, work_dir, cfg_options=cfg_options)
    else:
        train(config, work_dir, nproc,
              *(cfg_options_args(cfg_options) if cfg_options else ()))


def run_mim(*args, timeout=900):
    """``mim ARGS...`` (the README's commands) in a fresh process; its
    output, stdout then stderr."""
    mim = osp.join(osp.dirname(sys.executable), 'mim')
    proc = subprocess.run([mim, *args], cwd=REPO, env=env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def scalars(work_dir):
    """The training losses and the validation records of the one run's
    ``scalars.json`` in ``work_dir`` (its logger interval 1)."""
    (path, ) = glob.glob(osp.join(str(work_dir), '*', 'vis_data',
                                  'scalars.json'))
    with open(path) as f:
        records = [json.loads(line) for line in f]
    losses = [r['loss'] for r in records if 'loss' in r]
    return losses, [r for r in records if 'loss' not in r]


def mim_train(package, config, work_dir, *args):
    """``mim train PACKAGE CONFIG`` into ``work_dir``; its log, and the
    losses and validation records of :func:`scalars`."""
    log = run_mim('train', package, config, '--work-dir', str(work_dir),
                  *args)
    return (log, *scalars(work_dir))


def train_on_threads(runner, threads=1):
    """``runner.train()`` on ``threads`` intra-op threads (the toy runs'
    figures are measured on one), the process's own count restored
    after."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        runner.train()
    finally:
        torch.set_num_threads(before)


def backbone_watch():
    """A hook that records, when training ends, which of the backbone's
    parameters and BN running statistics still hold the values they had
    when it began (``.unmoved``; a frozen backbone: all);
    ``.check()`` asserts that they all moved."""
    import torch
    from mmengine.hooks import Hook

    class BackboneWatch(Hook):

        def before_train(self, runner):
            backbone = runner.model.backbone
            stats = [(n, b) for n, b in backbone.named_buffers()
                     if 'running' in n]
            self.initial = {n: t.detach().clone() for n, t in
                            [*backbone.named_parameters(), *stats]}

        def after_train(self, runner):
            state = runner.model.backbone.state_dict()
            self.unmoved = sorted(n for n, t in self.initial.items()
                                  if torch.equal(state[n], t))

        def check(self):
            assert len(self.initial) > 100 and not self.unmoved, self.unmoved

    return BackboneWatch()


def train_here(config, work_dir, threads=1, hooks=(), cfg_options=None):
    """tools/train.py's steps in this process (one process, no launcher)
    on ``threads`` intra-op threads, with ``hooks`` added and
    ``cfg_options`` merged (as ``--cfg-options``); the losses and
    validation records of :func:`scalars`. For runs whose subject is the
    model, or that are the one-process reference of a launcher's run: no
    fresh interpreter to import the toolboxes again. A config's
    ``randomness.deterministic`` turns torch's deterministic algorithms on
    for the whole process: they are put back as they were."""
    import torch
    from glnet_mm.apis import runner as glnet_runner
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark)
    try:
        cfg = glnet_runner.runner_config(config, cfg_options,
                                         work_dir=str(work_dir))
        runner = glnet_runner.build_runner(cfg)
        for hook in hooks:
            runner.register_hook(hook)
        train_on_threads(runner, threads)
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic = before[2]
        torch.backends.cudnn.benchmark = before[3]
    return scalars(work_dir)


def probes(work_dir):
    out = []
    for path in sorted(glob.glob(osp.join(str(work_dir), 'probe_rank[0-9].json'))):
        with open(path) as f:
            out.append(json.load(f))
    return out


def checkpoints(work_dir):
    return sorted(glob.glob(osp.join(str(work_dir), '*.pth')))


def weights_and_meta(path):
    """A checkpoint, read with the project's safe loading."""
    from glnet_mm import safe_load
    return safe_load(path)


def weights(path):
    return weights_and_meta(path)['state_dict']
