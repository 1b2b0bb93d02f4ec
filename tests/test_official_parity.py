"""Parity with the authors' code: golden outputs, parameter counts, key maps
and FLOPs of every released model; and, on the other supported stacks, with
the development stack."""
import json
import os
import subprocess
import textwrap

import numpy as np
import pytest
import torch
from conftest import (GOLDEN, REPO, RELEASED, arch_from_official, load_golden,
                      reference_path)

from glnet_mm import GLNet, checkpoint_filter_fn, load_pretrained
from glnet_mm.utils.flops import ATTENTION_CORE, count_params, flop_counts
from glnet_mm.models import resolve_arch


def classifier(arch, num_classes=1000):
    """mmpretrain's ImageClassifier in the official classifier layout (the
    test skips where mmpretrain is not installed)."""
    pytest.importorskip('mmpretrain', reason='mmpretrain is not installed '
                        '(a stack without the toolboxes tests the backbone)')
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(
            dict(type='ImageClassifier',
                 backbone=dict(type='GLNet', arch=arch, out_indices=(3, ),
                               out_norm_cfg=dict(type='BN')),
                 neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='LinearClsHead', num_classes=num_classes,
                           in_channels=resolve_arch(arch)['channels'][-1])))


def rel_err(out, ref):
    return ((out - ref).abs().max() / ref.abs().max()).item()


@pytest.mark.parametrize('variant', GOLDEN)
def test_golden_stage_outputs(variant):
    golden = load_golden(variant)
    model = GLNet(arch_from_official(golden['config']), out_norm_cfg=None)
    load_pretrained(model, dict(model=golden['state_dict']))
    model.eval()
    with torch.no_grad():
        outs = model(golden['input'])
    assert len(outs) == 4
    for out, ref in zip(outs, golden['stage_outputs']):
        assert out.shape == ref.shape
        assert rel_err(out, ref) < 1e-5, variant


@pytest.mark.parametrize('variant', GOLDEN)
def test_golden_logits_through_mmpretrain(variant):
    golden = load_golden(variant)
    arch = arch_from_official(golden['config'])
    model = classifier(arch, num_classes=10)
    state = checkpoint_filter_fn(golden['state_dict'], model.backbone,
                                 classifier=True)
    result = model.load_state_dict(state, strict=False)
    assert not result.unexpected_keys
    assert not [k for k in result.missing_keys
                if not k.startswith('data_preprocessor')]
    model.eval()
    with torch.no_grad():
        logits = model(golden['input'])
    assert rel_err(logits, golden['logits']) < 1e-5


# What the development stack computes, in one process of its own: argv a
# JSON list of jobs (golden file, GLNet arch, input .npy, output .npz); for
# each, the four stage outputs of the golden model.
STACK_OUTPUTS = textwrap.dedent("""
    import json, sys
    import numpy as np, torch
    from glnet_mm import GLNet, load_pretrained
    for golden_path, arch, input_path, out_path in json.loads(sys.argv[1]):
        golden = torch.load(golden_path, weights_only=True)
        model = GLNet(arch, out_norm_cfg=None)
        load_pretrained(model, dict(model=golden['state_dict']))
        with torch.no_grad():
            outs = model.eval()(torch.from_numpy(np.load(input_path)))
        np.savez(out_path, *[o.numpy() for o in outs],
                 torch=torch.__version__)
""")
# the golden input, 224x224 and a size that is no multiple of the strides
# (GLNet pads)
STACK_SIZES = ((224, 224), (200, 296))


@pytest.fixture(scope='module')
def stack_outputs(tmp_path_factory):
    """Each golden model's inputs (its golden one first), and the
    development stack's outputs of that model for them, from one process of
    its python (GLNET_MM_REFERENCE_PYTHON); None where it is not given:
    this is the development stack."""
    python = os.environ.get('GLNET_MM_REFERENCE_PYTHON')
    if not python:
        return None
    tmp = tmp_path_factory.mktemp('stack_outputs')
    gen = torch.Generator().manual_seed(0)
    sizes = {size: torch.randn(1, 3, *size, generator=gen)
             for size in STACK_SIZES}
    inputs, jobs = {}, []
    for variant in GOLDEN:
        golden = load_golden(variant)
        arch = arch_from_official(golden['config'])
        inputs[variant] = {'golden': golden['input'], **sizes}
        for i, x in enumerate(inputs[variant].values()):
            np.save(tmp / f'{variant}_{i}.npy', x.numpy())
            jobs.append((reference_path(f'golden_{variant}.pt'), arch,
                         str(tmp / f'{variant}_{i}.npy'),
                         str(tmp / f'{variant}_{i}.npz')))
    ref = subprocess.run([python, '-c', STACK_OUTPUTS, json.dumps(jobs)],
                         cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=REPO))
    assert ref.returncode == 0, ref.stderr[-3000:]
    outputs = {}
    for variant in GOLDEN:
        for i, key in enumerate(inputs[variant]):
            with np.load(tmp / f'{variant}_{i}.npz') as saved:
                outputs[variant, key] = (
                    [torch.from_numpy(saved[f'arr_{j}']) for j in range(4)],
                    f"torch {saved['torch']}")
    return inputs, outputs


@pytest.mark.parametrize('variant', GOLDEN)
def test_outputs_match_the_development_stack(variant, stack_outputs):
    """The stacks' checks (noxfile.py) give the development
    stack's python (GLNET_MM_REFERENCE_PYTHON): its outputs of the golden
    model match the authors' golden outputs, and this stack's outputs match
    its outputs, at 224x224 and at a size that is no multiple of the
    strides (GLNet pads), within 1e-5 of their largest value. Without it
    (on the development stack itself) the reference is the authors' golden
    outputs alone: a stack compared with itself would prove nothing."""
    golden = load_golden(variant)
    model = GLNet(arch_from_official(golden['config']), out_norm_cfg=None)
    load_pretrained(model, dict(model=golden['state_dict']))
    model.eval()
    if stack_outputs is None:
        inputs, stack = {'golden': golden['input']}, {}
    else:
        inputs, stack = stack_outputs
        inputs = inputs[variant]
        refs, there = stack[variant, 'golden']
        for out, ref in zip(refs, golden['stage_outputs']):
            assert rel_err(out, ref) < 1e-5, (variant, there)
    for size, x in inputs.items():
        refs, there = stack.get((variant, size),
                                (golden['stage_outputs'], 'the authors'))
        where = (variant, size, f'{there} there, torch {torch.__version__} '
                 'here')
        with torch.no_grad():
            outs = model(x)
        assert len(outs) == len(refs) == 4
        for out, ref_out in zip(outs, refs):
            assert out.shape == ref_out.shape, where
            assert rel_err(out, ref_out) < 1e-5, where


def test_golden_weights_refuse_a_wrong_switch():
    """One flipped switch (a 3x3 local depth-wise conv instead of the
    authors' 5x5) is caught: the golden weights do not load into it."""
    golden = load_golden('stl')
    arch = dict(arch_from_official(golden['config']), local_dw_ks=3)
    model = GLNet(arch, out_norm_cfg=None)
    with pytest.raises(ValueError, match='shape mismatches'):
        load_pretrained(model, dict(model=golden['state_dict']))


@pytest.mark.parametrize('variant', RELEASED)
def test_released_params_and_keys(variant, official_keys):
    ref = official_keys[f'glnet_{variant}']
    model = classifier(variant)
    assert count_params(model) == ref['params_total']
    assert count_params(model.backbone) == ref['params_without_head']
    own = model.state_dict()
    converted = checkpoint_filter_fn(
        {k: torch.empty(s) for k, s in ref['state_dict'].items()},
        model.backbone, classifier=True)
    assert len(converted) == len(ref['state_dict'])
    for key, tensor in converted.items():
        assert key in own, key
        assert tuple(own[key].shape) == tuple(tensor.shape), key
    assert set(own) == set(converted)
    official = dict(model={k: torch.zeros(s)
                           for k, s in ref['state_dict'].items()})
    backbone = GLNet(variant, out_indices=(3, ), out_norm_cfg=dict(type='BN'))
    missing, unexpected = load_pretrained(backbone, official)
    assert missing == [] and unexpected == []  # the classifier is dropped
    # with LayerNorm outputs the official BatchNorm is reported, not loaded
    missing, unexpected = load_pretrained(GLNet(variant), official)
    assert {k.split('.')[0] for k in missing} == {f'norm{i}' for i in range(4)}
    assert {k.split('.')[0] for k in unexpected} == {'norm'}


@pytest.mark.parametrize('variant', RELEASED)
def test_released_flops(variant, official_flops):
    """Every multiply-add of the official classifier, counted by mmengine's
    FlopAnalyzer as shipped (the counter behind the toolboxes' get_flops)
    and with the project's attention-core handle (the paper's figures).
    The one difference is the classifier's pooling: mmpretrain's
    GlobalAveragePooling neck is ``adaptive_avg_pool2d``, which the counter
    counts once per input element; the official classifier's ``mean`` is
    not counted."""
    from mmengine.analysis import FlopAnalyzer
    ref = official_flops[f'glnet_{variant}']
    model = classifier(variant).eval()
    pooled = resolve_arch(variant)['channels'][-1] * 7 * 7
    shipped = FlopAnalyzer(model, torch.zeros(1, 3, 224, 224))
    shipped.unsupported_ops_warnings(False)
    assert shipped.total() - pooled == \
        ref['flops_224_without_attention_core']
    counts = flop_counts(model)
    assert sum(counts.values()) - pooled == ref['flops_224']
    assert sum(counts.values()) - counts[ATTENTION_CORE] == shipped.total()
