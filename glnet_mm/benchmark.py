"""The one benchmark harness: timing, memory and output of every speed figure.

``tools/benchmark.py`` measures backbones, classifiers, detectors and
segmentors with it, on a CPU or a GPU, and every figure of docs/speed.md comes
from there. The rules:

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
  interpreter or the libraries.
* **Output**: a Markdown table, and the rows as JSON or CSV (``--out``),
  with the machine, the thread count, the precision and the settings; a
  Pareto plot of accuracy against images/s (``--pareto``, matplotlib's Agg
  backend). No output file is ever overwritten.

Only torch is needed here (matplotlib for the plot); the model builders, the
FLOP counts and the accuracies live in the tool.
"""
import csv
import json
import multiprocessing as mp
import os
import os.path as osp
import platform
import statistics
import time
from contextlib import nullcontext

import torch

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


def measure_train_memory(build_step, device):
    """Peak memory (GiB) of training steps (module docstring); call it in a
    fresh process (:func:`isolated`).

    Args:
        build_step (callable): Builds the model on ``device`` and returns a
            function that runs one full training step.
        device: The device.
    """
    cuda = torch.device(device).type == 'cuda'
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        before = _vm_kib('VmRSS') * 1024
    step = build_step()
    for _ in range(2):  # the first step also creates the optimizer state
        step()
    sync(device)
    peak = (torch.cuda.max_memory_allocated(device) if cuda else
            _vm_kib('VmHWM') * 1024)
    return (peak - before) / 2**30


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
    :data:`FIGURES` and the ratios)."""
    def settings(row):
        return tuple((k, v) for k, v in row.items()
                     if k not in keys and k not in FIGURES
                     and not k.endswith('_vs_baseline'))

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
