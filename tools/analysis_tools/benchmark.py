"""Speed and memory of GLNet beside Swin-T and ConvNeXt-T, in one run.

The one benchmark harness: every figure of docs/speed.md comes from here.
Weights are random: speed does not depend on them.

The rules:

* **Timing**: the models take turns in interleaved rounds (one timed call of
  each per round, after ``warmup`` untimed rounds), so that a change of a
  machine's load hits them all alike; CUDA is synchronised around each call.
  A model's figure is images/s from the median and from the minimum time
  over the rounds; ratios compare models of the same run only.
* **GEMM rate**: a ``GEMM_N``-cubed matmul (2048) on the run's device, in
  its precision's dtype (fp32, fp16 or bf16 tensors), takes its turn in the
  same interleaved rounds as the models; ``2 n^3`` over its median time is
  the machine's reachable GFLOP/s, against which the tool sets each model's
  achieved GFLOP/s (its FLOPs per image times its median images/s).
* **Memory**: the peak memory of a full training step (forward, loss,
  backward and the AdamW update) is measured in a fresh process per model,
  over two steps (the first also creates AdamW's state), from just before
  the model is built: on CUDA ``torch.cuda.max_memory_allocated`` minus what
  was allocated before; on a CPU the rise of the process's peak resident
  memory (``VmHWM``) over its resident memory before. Both therefore count
  weights, gradients, optimizer state and activations, and nothing of the
  interpreter or the libraries (``train_mem_gib``). ``step_mem_gib`` is
  what the second step adds to what the first left (weights, gradients and
  AdamW's state): its peak over the memory before it (on a CPU, ``VmHWM``
  reset through ``/proc/self/clear_refs``), mostly what autograd keeps for
  backward. ``without`` rows are measured with their trick off.
* **ONNX Runtime** (``--backend onnxruntime``): each model also runs
  exported, as a row ``MODEL (onnxruntime)`` in the same interleaved
  rounds, on the same input batch, with the same weights and as many
  intra-op threads as torch has (CPU, fp32, inference). Backbones and
  classifiers are exported by tools/deployment/export_onnx.py (torch's
  dynamo exporter, torch >= 2.6), detectors and segmentors whole by
  tools/deployment/deploy.py (mmdeploy, the deploy configs of
  :data:`DEPLOY_CONFIGS`; the classic stack, torch 2.1) and run by
  mmdeploy's backend model, pre- and post-processing included as in the
  PyTorch row. The row's ``ort_vs_pytorch`` is its images/s over the
  PyTorch row's; its ``ort_*`` figures are its outputs' agreement with
  PyTorch's on that batch (backbone, classifier: the largest relative
  error; detector, segmentor: deploy.py's per-image comparison). Random
  heads make mmdeploy's one-NMS RPN keep other weak proposals than mmdet's
  (docs/deploy.md), so a random detector's detections may differ.
* **Output**: a Markdown table, and the rows as JSON or CSV (``--out``),
  with the machine, the thread count, the precision and the settings; a
  Pareto plot of accuracy against images/s (``--pareto``, matplotlib's Agg
  backend). No output file is ever overwritten.


Compute use (``backbone`` and ``classifier``): a 2048^3 matmul in the run's
precision takes its turn in the same rounds (the GEMM rate, in the header and
the meta); each row has ``gflops_per_image`` (2 x the multiply-adds of
``glnet_mm.utils.flops.count_flops`` on one image: of the backbone, or of the
whole classifier with pooling and head; counted on a CPU copy in eval mode),
``gflop_s`` (that times the median images/s) and ``gemm_fraction`` (of the
GEMM rate). FLOPs are the forward's in both modes: a training step does about
3x (and one more forward with ``--with-cp``), so in ``--mode train`` the two
figures are the forward's share.

``--without TRICK ...`` is the A/B of GLMix's speed and memory tricks
(docs/speed.md): each GLNet model also runs as a row ``MODEL without
TRICK``, the same model with that trick's plain version swapped in while its
call runs, in the same interleaved rounds (``SPEED_TRICKS``:
``inplace-residual``, ``inplace-gelu``, ``lean-backward``).

``--with-cp`` builds the backbones with activation checkpointing
(``with_cp=True``; detector/segmentor configs: ``model.backbone.with_cp``),
for ``--mode train`` and ``--memory``; rows record it. ``--pareto PATH``
plots ImageNet-1k top-1 against the median images/s of this run, the GLNet
sizes joined: top-1 from the repo's ``model-index.yml`` (the entry named
after the model) and, for Swin-T and ConvNeXt-T, mmpretrain's installed
metafiles; a model without one is left off, with a note.

Tasks (what a model is):

* ``backbone``: the backbone alone, four feature maps (strides 4-32), the
  way detectors and segmentors use it. Swin-T and ConvNeXt-T are
  mmpretrain's (the architecture mmdet and mmseg use too).
* ``classifier``: mmpretrain's ``ImageClassifier`` (backbone, pooling,
  1000-class head), GLNet in the official classifier layout.
* ``detector``: the detector of the shipped COCO configs of ``--head``
  (``mask-rcnn``, default; ``dino``: DINO-4scale 12e; ``mask2former``:
  Mask2Former instance), beside the same head with Swin-T (mmdet's own
  Swin-T config; for DINO, which mmdet ships with Swin-L only, its
  DINO-4scale config with mmdet's Swin-T on stages 1-3), ``predict`` with
  post-processing.
* ``segmentor``: the segmentor of the shipped ADE20K configs of ``--head``
  (``upernet``, default; ``mask2former``) beside mmseg's Swin-T config of
  the same head, ``whole`` or ``slide`` inference.

Models: the GLNet presets of the arch table (``glnet-stl``,
``glnet-stl-paramslot``, ``glnet-4g``, ``glnet-9g``, ``glnet-16g``), the
ablations of ``configs/classification/ablations`` by config name
(``glnet-stl-local-only``, ...; backbone and classifier), ``swin-t``,
``convnext-t`` (not a detector/segmentor preset), or ``NAME=CONFIG``
(detector/segmentor: any config of that toolbox).

Examples::

    python tools/analysis_tools/benchmark.py backbone --threads 2 --batch 8
    python tools/analysis_tools/benchmark.py classifier --device cuda --batch 128 \\
        --precision bf16 --channels-last --compile --out gpu.json
    python tools/analysis_tools/benchmark.py detector --memory --out det.csv
    python tools/analysis_tools/benchmark.py detector --head dino --memory
    python tools/analysis_tools/benchmark.py segmentor --size 512 2048 --seg-mode slide
    python tools/analysis_tools/benchmark.py backbone --mode train --with-cp --memory
    python tools/analysis_tools/benchmark.py backbone --threads 2 --backend onnxruntime
    python tools/analysis_tools/benchmark.py classifier --models swin-t convnext-t \
        glnet-stl glnet-4g glnet-9g --pareto pareto.png
"""
import argparse
import copy
import csv
import ctypes
import gc
import json
import multiprocessing as mp
import os
import os.path as osp
import platform
import statistics
import sys
import time
import tempfile
from contextlib import ExitStack, nullcontext

import torch
import yaml

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)  # run from a checkout without installing

from glnet_mm.models import arch_zoo  # noqa: E402
from glnet_mm.models.backbones import glmix  # noqa: E402
from glnet_mm.utils.flops import count_flops, count_params  # noqa: E402

MODEL_INDEX = osp.join(REPO, 'model-index.yml')
ABLATIONS = osp.join(REPO, 'configs', 'classification', 'ablations')
# The GLNet models by name, from the arch table (glnet-stl, glnet-4g, ...)
# and from the ablation configs of the model index (glnet-stl-local-only,
# ... : a config glnet-stl-local-only_16xb128_in1k.py); the top-1 of
# --pareto is the model index's entry of the same name.
GLNET = {f'glnet-{key.replace("_", "-")}': key for key in arch_zoo
         if key != 'toy'}
OTHERS = ('swin-t', 'convnext-t')
# glmix.py's speed tricks, each turned off as its module docstring says
# (--without, the A/B of docs/speed.md): owner, attribute, plain version
SPEED_TRICKS = {
    'inplace-residual': (glmix, 'can_add_in_place', lambda x, branch: False),
    'inplace-gelu': (glmix.GELU, 'forward', torch.nn.GELU.forward),
    'lean-backward': (glmix, 'lean_backward', lambda h: False),  # memory
}
TASKS = ('backbone', 'classifier', 'detector', 'segmentor')
# mmdet's Swin-T (as in its Swin-T detectors) on stages 1-3, in place of the
# ResNet-50 of mmdet's DINO-4scale config: the Swin-T baseline of DINO.
SWIN_T_DINO = dict(model=dict(
    backbone=dict(
        _delete_=True, type='SwinTransformer', embed_dims=96,
        depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
        mlp_ratio=4, qkv_bias=True, drop_path_rate=0.2, patch_norm=True,
        out_indices=(1, 2, 3), convert_weights=True),
    neck=dict(in_channels=[192, 384, 768])))
# Per task and head: the Swin-T baseline (an upstream config, and what to
# change in it) and the shipped config of each GLNet size. The first head
# of a task is its default.
CONFIGS = {
    'detector': {
        'mask-rcnn': (('mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
                       None),
                      'configs/detection/mask-rcnn_glnet-{}_fpn_1x_coco.py'),
        'dino': (('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
                  SWIN_T_DINO),
                 'configs/detection/dino-4scale_glnet-{}_8xb2-12e_coco.py'),
        'mask2former': (('mmdet::mask2former/mask2former_swin-t-p4-w7-224_'
                         '8xb2-lsj-50e_coco.py', None),
                        'configs/detection/mask2former_glnet-{}_8xb2-lsj-'
                        '50e_coco.py'),
    },
    'segmentor': {
        'upernet': (('mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_'
                     '8xb2-160k_ade20k-512x512.py', None),
                    'configs/segmentation/upernet_glnet-{}_8xb2-160k_'
                    'ade20k-512x512.py'),
        'mask2former': (('mmseg::mask2former/mask2former_swin-t_8xb2-160k_'
                         'ade20k-512x512.py', None),
                        'configs/segmentation/mask2former_glnet-{}_8xb2-'
                        '160k_ade20k-512x512.py'),
    },
}
FLOP_TASKS = ('backbone', 'classifier')  # FLOPs and GEMM rate counted
# --backend onnxruntime: the mmdeploy deploy config (configs/deploy/) that
# exports each head whole (ONNX Runtime, CPU, fp32); a segmentor's static
# input shape is set to the run's --size. Backbones and classifiers export
# with tools/deployment/export_onnx.py (torch's dynamo exporter).
DEPLOY_CONFIGS = {
    'detector': {'mask-rcnn': 'instance-seg_onnxruntime_dynamic.py'},
    'segmentor': {'upernet': 'segmentation_onnxruntime_static-512x512.py'},
}
BACKENDS = ('pytorch', 'onnxruntime')
# ImageNet-1k top-1 for --pareto of the baselines, in mmpretrain's installed
# metafiles ('<folder>/<entry>'); a GLNet model's is the entry of the repo's
# model-index.yml named after it (top1()).
BASELINE_TOP1 = {
    'swin-t': 'swin_transformer/swin-tiny_16xb64_in1k',
    'convnext-t': 'convnext/convnext-tiny_32xb128_in1k',
}
REPORTED_TOP1 = 'Top 1 Accuracy (ImageNet-1k, reported by the authors)'
FAMILY = ('glnet-stl', 'glnet-4g', 'glnet-9g', 'glnet-16g')  # joined
DEFAULTS = dict(  # task: (models, size, batch)
    backbone=(['swin-t', 'convnext-t', 'glnet-stl', 'glnet-4g'], [224], 8),
    classifier=(['swin-t', 'convnext-t', 'glnet-stl', 'glnet-4g'], [224], 8),
    detector=(['swin-t', 'glnet-stl', 'glnet-4g'], [800, 1333], 1),
    segmentor=(['swin-t', 'glnet-stl', 'glnet-4g'], [512], 1),
)


# ---------------------------------------------------------------- harness
PRECISIONS = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}
GEMM_N = 2048  # the matmul of the GEMM rate: GEMM_N x GEMM_N x GEMM_N
# A row's own figures; every other key of a row is a setting (add_ratios).
FIGURES = ('model', 'params_m', 'gflops_per_image', 'gflop_s',
           'gemm_fraction')


def sync(device):
    """Wait for the device's queued work (a no-op on a CPU)."""
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def autocast(device, precision):
    """The autocast context of ``precision`` (``'fp32'``: none)."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def time_interleaved(calls, rounds, warmup, device):
    """Seconds per call of each callable, timed in interleaved rounds.

    Args:
        calls (dict[str, callable]): What to time, by name.
        rounds (int): Timed rounds (one call of each per round).
        warmup (int): Untimed rounds first.
        device: Where the work runs (synchronised around each call).

    Returns:
        dict[str, list[float]]: The timed seconds of each callable.
    """
    times = {name: [] for name in calls}
    for i in range(warmup + rounds):
        for name, call in calls.items():
            sync(device)
            start = time.perf_counter()
            call()
            sync(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def without(trick, call):
    """``call`` with GLMix's speed ``trick`` turned off while it runs."""
    owner, name, plain = SPEED_TRICKS[trick]

    def plain_call():
        fast = getattr(owner, name)
        setattr(owner, name, plain)
        try:
            return call()
        finally:
            setattr(owner, name, fast)
    return plain_call


def gemm_call(device, precision, n=GEMM_N):
    """A function that runs one ``n`` x ``n`` x ``n`` matmul on ``device`` in
    the dtype of ``precision`` (fp32 for ``'fp32'``), for
    :func:`time_interleaved`; :func:`gemm_gflop_s` makes its rate."""
    dtype = PRECISIONS[precision] or torch.float32
    a, b, out = (torch.randn(n, n, device=device, dtype=dtype)
                 for _ in range(3))
    return lambda: torch.matmul(a, b, out=out)


def gemm_gflop_s(seconds, n=GEMM_N):
    """GFLOP/s (``2 n^3`` per call) of the median of ``seconds``."""
    return 2 * n**3 / statistics.median(seconds) / 1e9


def summarise(seconds, images):
    """Images/s from the median and the fastest of ``seconds`` per call of
    ``images`` images."""
    return dict(images_per_s=images / statistics.median(seconds),
                best_images_per_s=images / min(seconds),
                rounds=len(seconds))


def _vm_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} is not in /proc/self/status')


def _malloc_trim():
    """glibc's ``malloc_trim(0)``: free heap memory back to the system
    (nothing where the C library is not glibc)."""
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_train_memory(build_step, device):
    """Peak memory (GiB) of training steps, and what the second step adds
    (module docstring); call it in a fresh process (:func:`isolated`).

    Args:
        build_step (callable): Builds the model on ``device`` and returns a
            function that runs one full training step.
        device: The device.

    Returns:
        tuple[float, float]: ``train_mem_gib`` and ``step_mem_gib``.
    """
    cuda = torch.device(device).type == 'cuda'

    def now():
        return (torch.cuda.memory_allocated(device) if cuda else
                _vm_kib('VmRSS') * 1024)

    def peak():
        sync(device)
        return (torch.cuda.max_memory_allocated(device) if cuda else
                _vm_kib('VmHWM') * 1024)

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    before = now()
    step = build_step()
    step()  # also creates the optimizer state
    first = peak()
    gc.collect()
    if not cuda:  # give freed heap back, so that the resident memory is
        _malloc_trim()  # what lives (glibc keeps freed blocks otherwise)
    between = now()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    else:  # 5: reset the peak resident memory (proc(5))
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    step()
    second = peak()
    return ((max(first, second) - before) / 2**30,
            (second - between) / 2**30)


def _child(fn, args, queue):
    try:
        queue.put(('ok', fn(*args)))
    except BaseException as error:  # reported by the parent
        queue.put(('error', f'{type(error).__name__}: {error}'))


def isolated(fn, *args):
    """``fn(*args)`` in a fresh (spawned) process; its return value.

    ``fn`` must be importable by name (a module-level function).
    """
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    status, value = queue.get()
    proc.join()
    if status != 'ok':
        raise RuntimeError(f'{getattr(fn, "__name__", fn)}{args[:1]} failed '
                           f'in its process: {value}')
    return value


def machine(device):
    """The device in words: the GPU's name, or the CPU's with the threads."""
    if torch.device(device).type == 'cuda':
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    if osp.exists('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            names = [line.split(':', 1)[1].strip() for line in f
                     if line.startswith('model name')]
        name = names[0] if names else name
    return f'{name}, {torch.get_num_threads()} threads'


def add_ratios(rows, baseline, keys):
    """Add ``<key>_vs_baseline`` to every row of the same settings as a row
    of the ``baseline`` model (settings: every key but ``keys``, the
    :data:`FIGURES`, the ratios and the ONNX Runtime rows' ``ort_*``
    figures; ``backend`` is a setting: an ONNX Runtime row's baseline is the
    baseline's ONNX Runtime row)."""
    def settings(row):
        return tuple((k, v) for k, v in row.items()
                     if k not in keys and k not in FIGURES and k != 'without'
                     and not k.endswith('_vs_baseline')
                     and not k.startswith('ort_'))

    bases = {settings(r): r for r in rows if r['model'] == baseline}
    for row in rows:
        base = bases.get(settings(row))
        for key in keys:
            if base and row.get(key) and base.get(key):
                row[f'{key}_vs_baseline'] = row[key] / base[key]
    return rows


def markdown(rows, columns):
    """A Markdown table of ``rows`` with ``columns`` ``(key, title, fmt)``;
    a figure with a ``_vs_baseline`` ratio shows it beside it."""
    columns = [c for c in columns if any(c[0] in r for r in rows)]
    lines = ['| ' + ' | '.join(title for _, title, _ in columns) + ' |',
             '|' + '---|' * len(columns)]
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key, '')
            cell = format(value, fmt) if isinstance(value, float) else str(
                value)
            ratio = row.get(f'{key}_vs_baseline')
            if ratio is not None:
                cell += f' ({ratio:.2f}x)'
            cells.append(cell)
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def write_rows(path, rows, meta):
    """Write the rows as JSON (``{'meta': ..., 'rows': [...]}``) or CSV (by
    the file's extension; CSV gets the meta as leading ``#`` lines).
    An existing file is not overwritten."""
    if osp.exists(path):
        raise FileExistsError(f'{path} exists; choose another --out')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    if path.endswith('.csv'):
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(path, 'w', newline='') as f:
            for k, v in meta.items():
                f.write(f'# {k}: {v}\n')
            writer = csv.DictWriter(f, keys)
            writer.writeheader()
            writer.writerows(rows)
    elif path.endswith('.json'):
        with open(path, 'w') as f:
            json.dump(dict(meta=meta, rows=rows), f, indent=2)
    else:
        raise ValueError(f'--out must end in .json or .csv, got {path}')


def pareto_plot(path, points, family, xlabel, title):
    """Draw ImageNet-1k top-1 against images/s (matplotlib, Agg backend),
    each point labelled with its model, the ``family`` joined in its order.
    An existing file is not overwritten.

    Args:
        path (str): The image (its extension picks the format).
        points (dict[str, tuple[float, float]]): ``(images/s, top-1)``.
        family (Sequence[str]): Models to join by a line, in order (those
            of them in ``points``).
        xlabel (str): The x axis' title (what was timed, and how).
        title (str): The plot's title (the machine).
    """
    if osp.exists(path):
        raise FileExistsError(f'{path} exists; choose another --pareto')
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.4, 4.8), layout='constrained')
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    line = [points[name] for name in family if name in points]
    if len(line) > 1:
        ax.plot(*zip(*line), '-', color='tab:red', zorder=1)
    for name, (speed, top1) in points.items():
        ax.scatter(speed, top1, zorder=2, color='tab:red' if name in family
                   else 'tab:blue')
        ax.annotate(name, (speed, top1), xytext=(4, 4),
                    textcoords='offset points', fontsize=9)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel('ImageNet-1k top-1 (%)')
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=150)


# ---------------------------------------------------------------- builders
def _ablation_configs():
    """``{model name: config path}`` of the ablation configs."""
    import glob
    return {osp.basename(path).split('_')[0]: path
            for path in sorted(glob.glob(osp.join(ABLATIONS, 'glnet-*.py')))}


def glnet_models():
    """Every GLNet model name this tool builds."""
    return list(GLNET) + list(_ablation_configs())


def _glnet_arch(name):
    if name in GLNET:
        return GLNET[name]
    from mmengine.config import Config
    return Config.fromfile(_ablation_configs()[name]).model.backbone.arch


def _backbone_cfg(name, classifier, with_cp=False):
    if name not in OTHERS:
        cfg = dict(type='GLNet', arch=_glnet_arch(name), with_cp=with_cp)
        if classifier:  # the official classifier layout
            cfg.update(out_indices=(3, ), out_norm_cfg=dict(type='BN'))
        return cfg
    stages = dict(out_indices=(3, ) if classifier else (0, 1, 2, 3),
                  with_cp=with_cp)
    if name == 'swin-t':  # pads maps smaller than a window, as mmdet's does
        return dict(type='SwinTransformer', arch='tiny', pad_small_map=True,
                    **stages)
    return dict(type='ConvNeXt', arch='tiny', **stages,
                gap_before_final_norm=classifier)


def _config(task, spec, with_cp=False):
    """The mm config of a detector/segmentor model, weights random.
    ``spec``: a config path, or ``(path, changes)`` with changes merged into
    it (``Config.merge_from_dict``)."""
    from mmengine.config import Config
    from mmengine.hub import get_config
    spec, changes = spec if isinstance(spec, tuple) else (spec, None)
    path = spec if '::' in spec else osp.join(REPO, spec)
    cfg = get_config(path) if '::' in path else Config.fromfile(path)
    if changes:  # a copy: merging consumes the `_delete_` keys
        cfg.merge_from_dict(copy.deepcopy(changes))
    cfg.model.pop('pretrained', None)
    cfg.model.backbone.init_cfg = None
    if with_cp:
        cfg.model.backbone.with_cp = True
    return cfg


def resolve(task, item, head=None):
    """``(name, spec)`` of a ``--models`` item for ``task`` (and the
    ``head`` of a detector/segmentor); ``spec`` is what :func:`build`
    needs."""
    name, _, config = item.partition('=')
    if config:
        if task not in CONFIGS:
            raise ValueError(f'NAME=CONFIG is for detector/segmentor, not '
                             f'{task}')
        if '::' not in config and not osp.isfile(config):
            raise ValueError(f'config {config!r} of {name!r} does not exist')
        return name, osp.abspath(config) if '::' not in config else config
    if task in CONFIGS:
        head = head or next(iter(CONFIGS[task]))
        if head not in CONFIGS[task]:
            raise ValueError(f'no {task} head {head!r}: choose from '
                             f'{sorted(CONFIGS[task])}')
        baseline, pattern = CONFIGS[task][head]
        if name == 'swin-t':
            return name, baseline
        if name in GLNET and isinstance(GLNET[name], str):
            path = pattern.format(name[len('glnet-'):])
            if osp.isfile(osp.join(REPO, path)):
                return name, path
        raise ValueError(f'no {task} config for {name!r}: use swin-t, '
                         'glnet-<stl|4g|9g|16g> or NAME=CONFIG')
    if name not in OTHERS and name not in glnet_models():
        raise ValueError(f'unknown model {name!r}: choose from '
                         f'{glnet_models() + list(OTHERS)}')
    return name, name


def build(task, spec, device, channels_last=False, with_cp=False):
    """The model of ``task`` on ``device``, and a function that makes a
    batch: ``make(batch, (h, w), train) -> dict`` of forward arguments.
    ``with_cp``: the backbone with activation checkpointing. Each model is
    built in its toolbox's scope, whatever scope the process was left in
    (mmdet and mmpretrain both have a SwinTransformer)."""
    from mmengine.registry import init_default_scope
    if task == 'backbone':
        cfg = _backbone_cfg(spec, classifier=False, with_cp=with_cp)
        if spec not in OTHERS:
            from glnet_mm import build_backbone
            model = build_backbone(cfg)
        else:
            from mmpretrain.registry import MODELS
            init_default_scope('mmpretrain')
            model = MODELS.build(cfg)
        make = _image_batch
    elif task == 'classifier':
        import glnet_mm  # noqa: F401
        from mmpretrain.registry import MODELS
        init_default_scope('mmpretrain')
        backbone = _backbone_cfg(spec, classifier=True, with_cp=with_cp)
        neck = None if backbone['type'] == 'ConvNeXt' else dict(
            type='GlobalAveragePooling')
        channels = (768 if spec in OTHERS else
                    glnet_mm.models.resolve_arch(backbone['arch'])
                    ['channels'][3])
        model = MODELS.build(
            dict(type='ImageClassifier', backbone=backbone, neck=neck,
                 head=dict(type='LinearClsHead', num_classes=1000,
                           in_channels=channels)))
        make = _classifier_batch
    else:
        from mmengine.model import revert_sync_batchnorm
        cfg = _config(task, spec, with_cp)
        scope = 'mmdet' if task == 'detector' else 'mmseg'
        init_default_scope(scope)
        if cfg.get('custom_imports'):
            from mmengine.utils import import_modules_from_strings
            import_modules_from_strings(**cfg.custom_imports)
        registry = __import__(f'{scope}.registry', fromlist=['MODELS'])
        model = revert_sync_batchnorm(registry.MODELS.build(cfg.model))
        make = _detector_batch if task == 'detector' else _segmentor_batch
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, make


def _image_batch(model, batch, size, train, device):
    return dict(x=torch.randn(batch, 3, *size, device=device))


def _classifier_batch(model, batch, size, train, device):
    from mmpretrain.structures import DataSample
    x = torch.randn(batch, 3, *size, device=device)
    samples = [DataSample().set_gt_label(i % 1000) for i in range(batch)]
    return dict(inputs=x, data_samples=samples,
                mode='loss' if train else 'tensor')


def _detector_batch(model, batch, size, train, device):
    from mmdet.testing import demo_mm_inputs
    data = demo_mm_inputs(batch_size=batch, image_shapes=(3, *size),
                          num_items=[10] * batch, num_classes=80,
                          with_mask=True, device=device)
    data['data_samples'] = [_test_scale(s) for s in data['data_samples']]
    data = model.data_preprocessor(data, train)
    return dict(data, mode='loss' if train else 'predict')


def _test_scale(sample):
    """``sample`` with the meta information of an image at the test scale as
    mmdet's test pipeline gives it (``scale_factor`` ``(1., 1.)``), without
    the ``border`` of mmdet's demo inputs (CenterNet's, which mmdeploy's
    post-processing would subtract from every box)."""
    meta = dict(sample.metainfo, scale_factor=(1., 1.))
    meta.pop('border', None)
    new = type(sample)(metainfo=meta)
    for key in sample.keys():
        setattr(new, key, sample.get(key))
    return new


def _segmentor_batch(model, batch, size, train, device):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(batch):
        sample = SegDataSample(metainfo=dict(
            img_shape=size, ori_shape=size, pad_shape=size))
        if train:
            sample.gt_sem_seg = PixelData(data=torch.randint(
                0, model.decode_head.num_classes, (1, *size), device=device))
        samples.append(sample)
    data = dict(inputs=[
        torch.randint(0, 256, (3, *size), dtype=torch.uint8, device=device)
        for _ in range(batch)
    ], data_samples=samples)
    data = model.data_preprocessor(data, train)
    return dict(data, mode='loss' if train else 'predict')


# ---------------------------------------------------------------- calls
def _loss(out):
    """One scalar from whatever the forward returned."""
    if isinstance(out, dict):  # mm models: a dict of losses
        out = [v for k, v in out.items() if 'loss' in k]
    if isinstance(out, torch.Tensor):
        return out.float().mean()
    return sum(_loss(o) for o in out)


def make_call(task, model, make, settings, train, data=None):
    """A function that runs one timed call: inference (no grad) or a full
    training step (forward, loss, backward, AdamW update); on ``data`` (the
    forward's arguments, made by ``make``) if given, else on a new batch."""
    device, precision = settings['device'], settings['precision']
    if data is None:
        data = make(model, settings['batch'], settings['size'], train,
                    device)
    if settings['channels_last'] and 'x' in data:
        data['x'] = data['x'].contiguous(memory_format=torch.channels_last)
    if settings['channels_last'] and task == 'classifier':
        data['inputs'] = data['inputs'].contiguous(
            memory_format=torch.channels_last)
    forward = model
    if settings['compile']:
        forward = torch.compile(model)
    if not train:
        model.eval()
        if task == 'segmentor':
            from mmengine.config import ConfigDict
            model.test_cfg = ConfigDict(
                mode=settings['seg_mode'], crop_size=(512, 512),
                stride=(341, 341))

        def infer():
            with torch.no_grad(), autocast(device, precision):
                forward(**data)

        return infer
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler(enabled=precision == 'fp16')

    def step():
        with autocast(device, precision):
            loss = _loss(forward(**data))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    return step


def train_memory(task, spec, settings, trick=None):
    """Training-step memory of one model (:func:`measure_train_memory`),
    with GLMix's ``trick`` off if given; run it in a fresh process."""
    if settings['threads']:
        torch.set_num_threads(settings['threads'])
    if trick:
        owner, name, plain = SPEED_TRICKS[trick]
        setattr(owner, name, plain)  # this process only

    def build_step():
        model, make = build(task, spec, settings['device'],
                            settings['channels_last'], settings['with_cp'])
        return make_call(task, model, make, dict(settings, compile=False),
                         train=True)

    return measure_train_memory(build_step, settings['device'])


# ------------------------------------------------------------ onnxruntime
def _load_tool(name):
    """The module of ``tools/<name>.py`` (tools/ is not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        osp.basename(name), osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_onnxruntime(task):
    """What ``--backend onnxruntime`` needs for ``task``, or a SystemExit
    naming what is missing: onnxruntime; for a backbone or classifier torch's
    dynamo exporter (tools/deployment/export_onnx.py: torch >= 2.6); for a
    detector or segmentor mmdeploy on the torch it exports on (the classic
    stack: tools/deployment/deploy.py's check, which names the versions)."""
    try:
        import onnxruntime
    except ImportError as error:
        raise SystemExit(f'--backend onnxruntime: onnxruntime is not '
                         f'installed ({error}); pip install "glnet_mm[export]"'
                         ' (backbone, classifier) or "glnet_mm[deploy]" on '
                         'the classic stack (detector, segmentor)')
    versions = dict(onnxruntime=onnxruntime.__version__)
    if task in CONFIGS:
        versions['mmdeploy'] = _load_tool('deployment/deploy').check_stack()
    else:
        from glnet_mm.utils.compat import require_torch
        try:
            require_torch('onnx_export')
        except RuntimeError as error:
            raise SystemExit(f'--backend onnxruntime, {task}: {error}')
    return versions


def ort_session(path, threads, custom_ops=None):
    """An ONNX Runtime CPU session of ``path`` on ``threads`` intra-op
    threads (the run's torch threads), operators run one at a time as
    PyTorch runs them; ``custom_ops``: a custom-op library to register."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if custom_ops:
        options.register_custom_ops_library(custom_ops)
    return ort.InferenceSession(path, options,
                                providers=['CPUExecutionProvider'])


def _ort_module(task, model, export_onnx):
    """The module of ``model`` that export_onnx exports: the backbone, or
    the classifier as images -> logits."""
    if task == 'classifier':
        return export_onnx.ClassifierLogits(model).eval()
    return model.eval()


def onnxruntime_call(task, spec, head, model, data, size, work):
    """``model`` exported to ONNX Runtime (CPU, fp32) with the same weights:
    a function that runs one call of it on ``data`` (the PyTorch call's
    forward arguments) and its outputs' agreement with PyTorch's on them.

    Backbone and classifier: tools/deployment/export_onnx.py's export at the
    batch and ``size`` of ``data`` (a static graph), agreement
    ``ort_max_rel_err`` (max abs difference over the max abs PyTorch value,
    the worst output). Detector and segmentor: the whole model through
    mmdeploy (tools/deployment/deploy.py's export and rewriters, the deploy
    config of :data:`DEPLOY_CONFIGS`), run by mmdeploy's backend model on
    the already preprocessed ``data`` (its pre- and post-processing timed
    as PyTorch's are); agreement per image by deploy.py's comparison (boxes,
    scores, masks' IoU; segmentation labels), the worst over the batch.
    """
    threads = torch.get_num_threads()
    if task not in CONFIGS:
        export_onnx = _load_tool('deployment/export_onnx')
        module = _ort_module(task, model, export_onnx)
        x = data['x'] if task == 'backbone' else data['inputs']
        path = osp.join(work, 'model.onnx')
        export_onnx.export(module, path, tuple(x.shape[-2:]),
                           batch=x.shape[0], output_names=[
                               f'out{i}' for i in range(
                                   4 if task == 'backbone' else 1)])
        session = ort_session(path, threads)
        feed = {session.get_inputs()[0].name: x.numpy()}
        errors = export_onnx.relative_errors(
            session.run(None, feed), export_onnx.torch_outputs(module, x))
        return (lambda: session.run(None, feed)), dict(
            ort_max_rel_err=max(errors))
    deploy = _load_tool('deployment/deploy')
    deploy.register_rewriters()
    from mmdeploy.utils import load_config
    if head not in DEPLOY_CONFIGS[task]:
        raise ValueError(f'--backend onnxruntime: no deploy config for the '
                         f'{task} head {head!r} (configs/deploy/: '
                         f'{sorted(DEPLOY_CONFIGS[task])})')
    deploy_cfg, = load_config(osp.join(REPO, 'configs', 'deploy',
                                       DEPLOY_CONFIGS[task][head]))
    if task == 'segmentor':  # mmdeploy exports mmseg models at one shape
        deploy_cfg.onnx_config.input_shape = [size[1], size[0]]  # W, H
    model_cfg = _config(task, spec)
    weights = osp.join(work, 'pytorch.pth')
    torch.save(dict(state_dict=model.state_dict()), weights)
    import mmcv
    import numpy as np
    img = osp.join(work, 'trace.png')  # what torch2onnx traces with
    mmcv.imwrite(np.random.default_rng(0).integers(
        0, 256, (*size, 3), dtype=np.uint8), img)
    files = deploy.export(deploy_cfg, model_cfg, weights, img, work)
    backend = deploy.backend_model(deploy_cfg, model_cfg, files)
    use_threads(backend, files[0], threads)
    with torch.no_grad():
        refs = model(**copy.deepcopy(data))
        outs = backend(**copy.deepcopy(data))
    worst = deploy.compare_outputs(refs, outs, 0.3)

    def infer():
        with torch.no_grad():
            backend(**data)

    return infer, {f'ort_{k}': v for k, v in worst.items()}


def use_threads(backend_model, onnx_file, threads):
    """Give the ONNX Runtime session of an mmdeploy backend model
    ``threads`` intra-op threads: mmdeploy's ORTWrapper makes its session
    of ``onnx_file`` with default options (as many threads as the machine
    has cores), which would compare ONNX Runtime on all cores with PyTorch
    on ``--threads``. The session is made again (:func:`ort_session`, with
    mmdeploy's custom-op library where it has one), and its I/O binding."""
    from mmdeploy.backend.onnxruntime.init_plugins import get_ops_path
    from mmdeploy.backend.onnxruntime.wrapper import ORTWrapper
    wrappers = [m for m in backend_model.modules()
                if isinstance(m, ORTWrapper)]
    if len(wrappers) != 1:
        raise TypeError(f'{type(backend_model).__name__}: {len(wrappers)} '
                        'ONNX Runtime sessions, not one')
    wrapper, = wrappers
    ops = get_ops_path()
    wrapper.sess = ort_session(onnx_file, threads,
                               ops if osp.exists(ops) else None)
    wrapper.io_binding = wrapper.sess.io_binding()


# ---------------------------------------------------------------- figures
def gflops_per_image(model, size, device):
    """2 x the multiply-adds of ``model`` on one ``size`` image, counted in
    eval mode (count_flops restores the mode) on a CPU copy if the model
    lives elsewhere or checkpoints (which the tracer cannot follow; FLOPs do
    not depend on it)."""
    if torch.device(device).type != 'cpu' or any(
            getattr(m, 'with_cp', False) for m in model.modules()):
        model = copy.deepcopy(model).cpu()
        for module in model.modules():
            if getattr(module, 'with_cp', False):
                module.with_cp = False
    return 2 * count_flops(model, (1, 3, *size)) / 1e9


def _metafile_models(path):
    """``{Name: entry}`` of a mim metafile and of the files it imports."""
    with open(path) as f:
        data = yaml.safe_load(f)
    models = {m['Name']: m for m in data.get('Models') or ()}
    for imported in data.get('Import') or ():
        models.update(_metafile_models(osp.join(osp.dirname(path),
                                                imported)))
    return models


def top1(name):
    """ImageNet-1k top-1 (%) of ``name``: a baseline's from mmpretrain's
    metafile (:data:`BASELINE_TOP1`), a GLNet model's from the model index
    (``<name>_3rdparty_in1k``, the released weights, else the config
    ``<name>_16xb128_in1k``, whose entry may carry the paper's figure as
    ``REPORTED_TOP1``); raises ``LookupError`` (KeyError) if there is
    none."""
    if name in BASELINE_TOP1:
        import mmpretrain
        folder, entry = BASELINE_TOP1[name].split('/')
        path = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs',
                        folder, 'metafile.yml')
        model = _metafile_models(path)[entry]
    else:
        path, models = MODEL_INDEX, _metafile_models(MODEL_INDEX)
        entry = next((f'{name}_{suffix}'
                      for suffix in ('3rdparty_in1k', '16xb128_in1k')
                      if f'{name}_{suffix}' in models), name)
        model = models[entry]
    for result in model.get('Results') or ():
        if (result['Dataset'] == 'ImageNet-1k'
                and result['Task'] == 'Image Classification'):
            return float(result['Metrics']['Top 1 Accuracy'])
    if REPORTED_TOP1 in (model.get('Metadata') or {}):
        return float(model['Metadata'][REPORTED_TOP1])
    raise KeyError(f'{entry} has no ImageNet-1k top-1 in {path}')


def pareto(path, rows, args, machine):
    """The Pareto plot of ``rows``; notes on the models left off."""
    points, notes = {}, []
    for row in rows:
        try:
            points[row['model']] = (row['images_per_s'], top1(row['model']))
        except (LookupError, OSError) as error:
            notes.append(f'{row["model"]}: left off the Pareto plot, no '
                         f'ImageNet-1k top-1 ({type(error).__name__}: '
                         f'{error})')
    pareto_plot(
        path, points, FAMILY,
        xlabel=f'images/s (median): {args.task} {args.mode}, '
        f'{args.size[0]}x{args.size[1]}, batch {args.batch}, '
        f'{args.precision}, {args.device}',
        title=machine)
    return notes


# ---------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('task', choices=TASKS)
    parser.add_argument('--models', nargs='+',
                        help='models to compare (default: per task)')
    parser.add_argument('--head', help='detector: mask-rcnn (default), dino, '
                        'mask2former; segmentor: upernet (default), '
                        'mask2former')
    parser.add_argument('--baseline', default='swin-t',
                        help='the model ratios refer to (default: swin-t)')
    parser.add_argument('--size', type=int, nargs='+', metavar='H [W]',
                        help='input size (default: 224; detector 800 1333; '
                        'segmentor 512)')
    parser.add_argument('--batch', type=int, help='images per call '
                        '(default: 8; detector and segmentor 1)')
    parser.add_argument('--mode', choices=('infer', 'train'),
                        default='infer', help='time inference, or full '
                        'training steps (forward, backward, AdamW)')
    parser.add_argument('--memory', action='store_true',
                        help='also measure the peak memory of a training '
                        'step, each model in a fresh process')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--precision', choices=tuple(PRECISIONS),
                        default='fp32', help='fp16/bf16: autocast')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the models')
    parser.add_argument('--with-cp', action='store_true',
                        help='backbones with activation checkpointing '
                        '(with --mode train or --memory)')
    parser.add_argument('--seg-mode', choices=('whole', 'slide'),
                        default='whole', help='segmentor inference mode '
                        '(slide: 512x512 windows, stride 341)')
    parser.add_argument('--rounds', type=int, default=5,
                        help='timed interleaved rounds (default: 5)')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed rounds first (default: 2)')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch CPU threads (0: torch default)')
    parser.add_argument('--without', nargs='+', default=[],
                        choices=tuple(SPEED_TRICKS), help='A/B: each GLNet '
                        'model also runs without each of these speed tricks, '
                        'in the same rounds')
    parser.add_argument('--backend', choices=BACKENDS, default='pytorch',
                        help='onnxruntime: each model also runs exported to '
                        'ONNX Runtime (CPU, fp32, the same weights, input '
                        'and threads) as a row "MODEL (onnxruntime)" in the '
                        'same rounds, with its images/s over the PyTorch '
                        "row's and its outputs' agreement with PyTorch's")
    parser.add_argument('--smoke', action='store_true',
                        help='one round, no warm-up: does it run?')
    parser.add_argument('--out', help='write the rows to this .json/.csv')
    parser.add_argument('--pareto', metavar='PATH.png',
                        help='plot ImageNet-1k top-1 against images/s '
                        '(.png, .pdf or .svg)')
    args = parser.parse_args(argv)
    models, size, batch = DEFAULTS[args.task]
    args.size = tuple(args.size or size)
    if len(args.size) == 1:
        args.size = args.size * 2
    if len(args.size) != 2 or min(args.size) < 32:
        parser.error(f'--size takes H or H W, at least 32; got {args.size}')
    args.batch = args.batch or batch
    if args.smoke:
        args.rounds, args.warmup = 1, 0
    if args.rounds < 1 or args.warmup < 0 or args.batch < 1:
        parser.error('--rounds and --batch must be >= 1, --warmup >= 0')
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    if args.precision == 'fp16' and not args.device.startswith('cuda'):
        parser.error('--precision fp16 needs a CUDA device (use bf16 on CPU)')
    if args.out and osp.exists(args.out):
        parser.error(f'--out {args.out} exists; choose another file')
    if args.out and not args.out.endswith(('.json', '.csv')):
        parser.error('--out must end in .json or .csv')
    if args.pareto and osp.exists(args.pareto):
        parser.error(f'--pareto {args.pareto} exists; choose another file')
    if args.pareto and not args.pareto.endswith(('.png', '.pdf', '.svg')):
        parser.error('--pareto must end in .png, .pdf or .svg')
    if (args.task == 'detector' and args.head == 'mask2former'
            and (args.memory or args.mode == 'train')
            and max(args.size) > 1024):
        parser.error(f'--size {args.size[0]} {args.size[1]}: Mask2Former '
                     '(COCO) trains on 1024x1024 crops (its preprocessor '
                     'pads each batch to 1024x1024 and refuses larger '
                     'images): use --size 1024 with --memory or --mode train')
    if args.with_cp and args.mode != 'train' and not args.memory:
        parser.error('--with-cp changes training steps only: use it with '
                     '--mode train or --memory')
    if args.backend == 'onnxruntime':
        other = [flag for flag, on in (
            (f'--device {args.device}', args.device != 'cpu'),
            (f'--precision {args.precision}', args.precision != 'fp32'),
            ('--mode train', args.mode == 'train'),
            ('--compile', args.compile),
            ('--channels-last', args.channels_last),
            ('--memory', args.memory), ('--without', bool(args.without)))
            if on]
        if other:
            parser.error('--backend onnxruntime times fp32 inference on the '
                         f'CPU: not with {", ".join(other)}')
    if args.head and args.task not in CONFIGS:
        parser.error(f'--head is for detector/segmentor, not {args.task}')
    if args.task in CONFIGS:
        args.head = args.head or next(iter(CONFIGS[args.task]))
    try:
        args.models = dict(resolve(args.task, m, args.head)
                           for m in (args.models or models))
    except ValueError as error:
        parser.error(str(error))
    if args.baseline not in args.models:
        args.baseline = None
    return args


def main(argv=None):
    args = parse_args(argv)
    versions = (check_onnxruntime(args.task)
                if args.backend == 'onnxruntime' else {})
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = dict(device=args.device, precision=args.precision,
                    batch=args.batch, size=args.size,
                    channels_last=args.channels_last, compile=args.compile,
                    seg_mode=args.seg_mode, threads=args.threads,
                    with_cp=args.with_cp)
    flops = args.task in FLOP_TASKS
    rows, calls, notes = [], {}, []
    exports = ExitStack()  # the ONNX files' folders, removed at the end
    for name, spec in args.models.items():
        model, make = build(args.task, spec, args.device, args.channels_last,
                            args.with_cp)
        row = dict(
            model=name, task=args.task, head=args.head, mode=args.mode,
            size=f'{args.size[0]}x{args.size[1]}', batch=args.batch,
            precision=args.precision, channels_last=args.channels_last,
            compile=args.compile, with_cp=args.with_cp, without=None,
            backend='pytorch',
            params_m=count_params(getattr(model, 'backbone', model)) / 1e6)
        if flops:
            try:
                row['gflops_per_image'] = gflops_per_image(
                    model, args.size, args.device)
            except Exception as error:  # the cells stay empty
                notes.append(f'{name}: FLOPs not counted '
                             f'({type(error).__name__}: {error})')
        rows.append(row)
        data = None
        if args.backend == 'onnxruntime':  # one batch for both
            data = make(model, args.batch, args.size, False, args.device)
        calls[name] = make_call(args.task, model, make, settings,
                                train=args.mode == 'train', data=data)
        if args.backend == 'onnxruntime':
            work = exports.enter_context(tempfile.TemporaryDirectory(
                prefix='glnet_mm_ort_'))
            try:
                call, agreement = onnxruntime_call(
                    args.task, spec, args.head, model, copy.deepcopy(data),
                    args.size, work)
            except Exception as error:  # the PyTorch row stays
                notes.append(f'{name}: not exported to ONNX Runtime '
                             f'({type(error).__name__}: {error})')
            else:
                rows.append(dict(row, model=f'{name} (onnxruntime)',
                                 backend='onnxruntime', **agreement))
                calls[rows[-1]['model']] = call
        for trick in args.without if name not in OTHERS else ():
            rows.append(dict(row, model=f'{name} without {trick}',
                             without=trick))
            calls[rows[-1]['model']] = without(trick, calls[name])
    gemm = ('gemm', GEMM_N)  # a key no model name can take
    if flops:
        calls[gemm] = gemm_call(args.device, args.precision)
    with exports:
        times = time_interleaved(calls, args.rounds, args.warmup,
                                 args.device)
    gemm_rate = gemm_gflop_s(times[gemm]) if flops else None
    for row in rows:
        row.update(summarise(times[row['model']], args.batch))
        if 'gflops_per_image' in row:
            row['gflop_s'] = row['gflops_per_image'] * row['images_per_s']
            row['gemm_fraction'] = row['gflop_s'] / gemm_rate
        if args.memory:
            name = row['model'].split(' without ')[0]
            row['train_mem_gib'], row['step_mem_gib'] = isolated(
                train_memory, args.task, args.models[name], settings,
                row['without'])
    pytorch = {r['model']: r for r in rows if r['backend'] == 'pytorch'}
    for row in rows:  # ONNX Runtime against PyTorch, the same model
        if row['backend'] == 'onnxruntime':
            twin = pytorch[row['model'][:-len(' (onnxruntime)')]]
            row['ort_vs_pytorch'] = (row['images_per_s'] /
                                     twin['images_per_s'])
    keys = ('images_per_s', 'best_images_per_s', 'train_mem_gib',
            'step_mem_gib')
    if args.baseline:
        add_ratios(rows, args.baseline, keys)
    meta = dict(machine=machine(args.device), torch=torch.__version__,
                threads=torch.get_num_threads(), rounds=args.rounds,
                warmup=args.warmup, baseline=args.baseline, **versions)
    if flops:
        meta.update(gemm=f'{GEMM_N}^3 matmul, {args.precision}',
                    gemm_gflop_s=gemm_rate)
    gemm_note = (f'; GEMM {meta["gemm"]}: {gemm_rate:.1f} GFLOP/s (median)'
                 if flops else '')
    task = f'{args.task} ({args.head})' if args.head else args.task
    print(f'\n{task}, {args.mode}, {args.size[0]}x{args.size[1]}, '
          f'batch {args.batch}, {args.precision}'
          f'{", channels_last" if args.channels_last else ""}'
          f'{", compiled" if args.compile else ""}'
          f'{", with_cp" if args.with_cp else ""}'
          f'; {meta["machine"]}; '
          f'median (best) of {args.rounds} interleaved rounds'
          + (f'; ratios vs {args.baseline}' if args.baseline else '')
          + ''.join(f'; {k} {v}' for k, v in versions.items())
          + gemm_note + '\n')
    print(markdown(rows, [
        ('model', 'model', ''), ('params_m', 'backbone params (M)', '.1f'),
        ('gflops_per_image', 'GFLOPs/image', '.2f'),
        ('images_per_s', 'images/s (median)', '.2f'),
        ('best_images_per_s', 'images/s (best)', '.2f'),
        ('gflop_s', 'GFLOP/s (median)', '.1f'),
        ('gemm_fraction', 'of GEMM rate', '.1%'),
        ('train_mem_gib', 'train-step peak memory (GiB)', '.2f'),
        ('step_mem_gib', 'a step adds (GiB)', '.2f'),
        ('ort_vs_pytorch', 'vs PyTorch (images/s)', '.2f'),
        ('ort_max_rel_err', 'max rel. error vs PyTorch', '.1e'),
        ('ort_compared', 'detections compared', ''),
        ('ort_unmatched', 'unmatched', ''),
        ('ort_box_max_abs', 'box diff. (px)', '.1e'),
        ('ort_score_max_abs', 'score diff.', '.1e'),
        ('ort_mask_min_iou', 'min mask IoU', '.4f'),
        ('ort_label_agreement', 'labels agree', '.3%'),
        ('ort_label_miou', 'labels mIoU', '.4f')]))
    if args.pareto:
        notes += pareto(args.pareto, rows, args, meta['machine'])
        print(f'\nPareto plot written to {args.pareto}')
    if notes:
        meta['notes'] = notes
        print('\nNotes:\n' + '\n'.join(f'- {n}' for n in notes))
    if args.out:
        write_rows(args.out, rows, meta)
        print(f'\nrows written to {args.out}')
    return rows


if __name__ == '__main__':
    main()
