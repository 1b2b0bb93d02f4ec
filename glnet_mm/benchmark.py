"""The one benchmark harness: timing, memory and output of every speed figure.

``tools/benchmark.py`` measures backbones, classifiers, detectors and
segmentors with it, on a CPU or a GPU, and every figure of the README comes
from there. The rules:

* **Timing**: the models take turns in interleaved rounds (one timed call of
  each per round, after ``warmup`` untimed rounds), so that a change of a
  machine's load hits them all alike; CUDA is synchronised around each call.
  A model's figure is images/s from the median and from the minimum time
  over the rounds; ratios compare models of the same run only.
* **Memory**: the peak memory of a full training step (forward, loss,
  backward and the AdamW update) is measured in a fresh process per model,
  over two steps (the first also creates AdamW's state), from just before
  the model is built: on CUDA ``torch.cuda.max_memory_allocated`` minus what
  was allocated before; on a CPU the rise of the process's peak resident
  memory (``VmHWM``) over its resident memory before. Both therefore count
  weights, gradients, optimizer state and activations, and nothing of the
  interpreter or the libraries.
* **Output**: a Markdown table, and the rows as JSON or CSV (``--out``),
  with the machine, the thread count, the precision and the settings.

Only torch is needed here; the model builders live in the tool.
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
    of the ``baseline`` model."""
    def settings(row):
        return tuple((k, v) for k, v in row.items()
                     if k not in keys and k not in ('model', 'params_m')
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
