"""What differs between the supported torch versions, in one place.

glnet_mm runs on torch >= 2.1 (the version of the common mmdet 3.3
environment). The model itself needs nothing newer; a few tools do, and they
call :func:`require_torch`, which refuses with an error naming the version
they need instead of failing somewhere inside torch.
"""
import re

import torch

#: The lowest torch this package supports (``install_requires``).
MIN_TORCH = (2, 1)

# What needs a newer torch: feature -> ((major, minor), what).
NEEDS = {
    # tools/deployment/export_onnx.py: torch.export with Dim.DYNAMIC sizes and
    # torch.onnx.export(dynamo=True) of the exported program.
    'onnx_export': ((2, 6), 'ONNX export (torch.export with Dim.DYNAMIC '
                    'and torch.onnx.export(dynamo=True))'),
}


def torch_version(version=None):
    """``(major, minor)`` of ``version`` (default: the running torch)."""
    version = torch.__version__ if version is None else version
    match = re.match(r'(\d+)\.(\d+)', str(version))
    if match is None:
        raise ValueError(f'Cannot parse the torch version {version!r}')
    return int(match.group(1)), int(match.group(2))


def torch_at_least(major, minor):
    """Whether the running torch is ``major.minor`` or newer."""
    return torch_version() >= (major, minor)


def require_torch(feature):
    """Raise a ``RuntimeError`` naming the torch version ``feature`` (a key
    of :data:`NEEDS`) needs, when the running torch is older."""
    (major, minor), what = NEEDS[feature]
    if not torch_at_least(major, minor):
        raise RuntimeError(
            f'{what} needs torch >= {major}.{minor}; this is torch '
            f'{torch.__version__}. The GLNet model itself (training, '
            'inference, checkpoints) works on torch >= '
            f'{MIN_TORCH[0]}.{MIN_TORCH[1]}.')


#: ``torch.compiler.is_compiling()`` (torch 2.3+), else torch 2.1/2.2's
#: ``torch._dynamo.is_compiling()``: True while dynamo traces. Model code
#: uses it to skip eager-only tricks that torch 2.1's dynamo cannot trace
#: without graph breaks (tensor identity tests).
is_compiling = getattr(getattr(torch, 'compiler', None), 'is_compiling',
                       None)
if is_compiling is None:  # torch < 2.3
    from torch._dynamo import is_compiling


def _never_exporting():
    """Stand-in for ``torch.compiler.is_exporting`` where torch lacks it."""
    return False


_torch_is_exporting = getattr(getattr(torch, 'compiler', None),
                              'is_exporting', _never_exporting)


def is_exporting():
    """Whether the forward is being exported: ``torch.export`` (the dynamo
    ONNX exporter of ``tools/deployment/export_onnx.py``) or torch's
    TorchScript-based ONNX exporter (``torch.onnx.export(...,
    dynamo=False)``, which mmdeploy calls). Model code then takes its
    export-only paths (pooling windows computed from the traced size): an
    exporter records eager shortcuts as constants, and the graph computes
    something else than the model at other sizes, silently. A plain
    ``torch.jit.trace`` (mmengine's FLOP counter) is not an export: it keeps
    PyTorch's own kernels, whose FLOPs are counted. Under ``torch.compile``
    only ``torch.compiler.is_exporting`` counts (no check here may break its
    graph)."""
    if is_compiling():
        return _torch_is_exporting()
    return _torch_is_exporting() or torch.onnx.is_in_onnx_export()


def is_recording():
    """Whether the forward is being recorded into a graph rather than run:
    :func:`is_exporting`, or any ``torch.jit.trace``. Model code takes none of
    its in-place speed tricks then: a tracer may record an in-place write
    into a graph that computes something else."""
    return is_exporting() or (not is_compiling() and torch.jit.is_tracing())


def autocast_state(device_type):
    """``(enabled, dtype)`` of autocast on ``device_type`` ('cpu', 'cuda')
    right now, on torch 2.1 (per-device functions) and on newer torch (one
    function taking the device)."""
    if hasattr(torch, 'get_autocast_dtype'):  # torch 2.4+
        return (torch.is_autocast_enabled(device_type),
                torch.get_autocast_dtype(device_type))
    if device_type == 'cpu':
        return (torch.is_autocast_cpu_enabled(),
                torch.get_autocast_cpu_dtype())
    return torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()
