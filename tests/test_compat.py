"""glnet_mm.utils.compat: what differs between torch versions, and the refusals of
features that need a newer torch than the one running."""
import re

import pytest
import torch
from conftest import load_tool

from glnet_mm.utils import compat


def load_export_tool():
    return load_tool('deployment/export_onnx')


def test_torch_version_parsing():
    assert compat.torch_version('2.1.2+cu121') == (2, 1)
    assert compat.torch_version('2.14.1') == (2, 14)
    assert compat.torch_version('2.16.0.dev20270101') == (2, 16)
    with pytest.raises(ValueError, match='torch version'):
        compat.torch_version('unknown')
    assert compat.torch_version() >= compat.MIN_TORCH


def test_onnx_export_refused_on_old_torch(monkeypatch):
    """tools/deployment/export_onnx.py says which torch it needs instead of failing
    inside torch (the classic stack's torch 2.1 has no Dim.DYNAMIC)."""
    tool = load_export_tool()
    monkeypatch.setattr(torch, '__version__', '2.1.2')
    with pytest.raises(RuntimeError, match=r'needs torch >= 2\.6; this is '
                       r'torch 2\.1\.2'):
        tool.export(torch.nn.Identity(), 'unused.onnx', (32, 32))
    with pytest.raises(RuntimeError, match=r'needs torch >= 2\.6'):
        tool.main(['unused_config.py', '--out', 'unused.onnx', '--shape',
                   '32', '32'])


def test_onnx_export_on_this_torch():
    """The same refusal on the torch that runs, unpatched: on one older than
    NEEDS says (the classic stack's 2.1.2) the tool names the version it
    needs; on a newer one the check lets the export through."""
    (major, minor), _ = compat.NEEDS['onnx_export']
    tool = load_export_tool()
    if compat.torch_at_least(major, minor):
        assert compat.require_torch('onnx_export') is None
    else:
        with pytest.raises(RuntimeError, match=(
                rf'needs torch >= {major}\.{minor}; this is torch '
                rf'{re.escape(torch.__version__)}\. The GLNet model itself')):
            tool.main(['unused_config.py', '--out', 'unused.onnx', '--shape',
                       '32', '32'])


def test_is_exporting():
    """torch's own function where it exists (the TorchScript ONNX exporter
    too: tests/test_deploy.py); False in eager mode."""
    probe = getattr(torch.compiler, 'is_exporting', None)
    if probe is not None:
        assert compat._torch_is_exporting is probe
    else:  # torch 2.1
        assert compat._torch_is_exporting is compat._never_exporting
    assert compat.is_exporting() is False
    assert compat.is_recording() is False
