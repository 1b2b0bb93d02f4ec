"""Export the GLNet backbone or the whole classifier of a config to ONNX.

Uses torch's own exporter (``torch.onnx.export(..., dynamo=True)``, which
needs the ``onnx`` and ``onnxscript`` packages, and torch >= 2.6: older torch
is refused with an error naming the version) and, when ``onnxruntime`` is
installed, checks the file against PyTorch at the export size.

* A classifier config (mmpretrain ``ImageClassifier``) exports the whole
  classifier: input an already normalised ``(N, 3, H, W)`` float image
  batch (the config's ``data_preprocessor`` mean/std are printed), output
  the logits. ``--backbone`` exports its GLNet alone.
* Any other config (mmdet, mmseg) exports its GLNet backbone: one output per
  ``out_indices`` entry, ``out0`` ... in stage order.

``--checkpoint`` takes what the config's model loads: for a classifier an
mmpretrain checkpoint or a released official file (converted on load), for a
backbone an official file or any OpenMMLab checkpoint holding
``backbone.*`` weights. A file that does not fit is an error; the export
never runs on half-loaded weights. ``--dynamic`` makes the batch, height and
width dynamic (any size the backbone accepts); otherwise the graph is fixed
to ``--batch x 3 x H x W``. An existing ``--out`` is kept unless ``--force``.

Example::

    python tools/deployment/export_onnx.py configs/classification/glnet-4g_3rdparty_in1k.py \\
        --checkpoint glnet_4g.pth --out glnet-4g.onnx --shape 224 224 --dynamic
"""
import argparse
import logging
import os
import os.path as osp
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn

from glnet_mm.utils.compat import require_torch

TOLERANCE = 1e-4  # relative to the largest PyTorch output value


class ClassifierLogits(nn.Module):
    """An mmpretrain classifier as ``images -> logits``."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(x, mode='tensor')


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='an OpenMMLab config with a GLNet '
                        'backbone')
    parser.add_argument('--checkpoint', help='weights to export (without '
                        'it: the random initial weights, with a warning)')
    parser.add_argument('--out', required=True, help='the .onnx file')
    parser.add_argument('--shape', type=int, nargs=2, required=True,
                        metavar=('H', 'W'), help='input height and width')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch, height and width')
    parser.add_argument('--batch', type=int, default=1,
                        help='batch size of a static graph (default 1)')
    parser.add_argument('--backbone', action='store_true',
                        help='export only the GLNet backbone of a classifier '
                        'config')
    parser.add_argument('--opset', type=int, default=18,
                        help='ONNX opset (default 18)')
    parser.add_argument('--force', action='store_true',
                        help='overwrite an existing --out')
    parser.add_argument('--no-verify', action='store_true',
                        help='skip the onnxruntime check')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    args = parser.parse_args(argv)
    if min(args.shape) < 1 or args.batch < 1:
        parser.error(f'--shape {args.shape} and --batch {args.batch} must be '
                     'positive')
    return args


def build_model(cfg, checkpoint=None, backbone_only=False):
    """The module to export and a description of it.

    Returns:
        tuple[nn.Module, str, list[str]]: Module in eval mode, ``'classifier'``
        or ``'backbone'``, output names.
    """
    from mmengine.registry import MODELS, init_default_scope
    from glnet_mm.apis.backbone import backbone_config, build_backbone
    backbone_config(cfg)  # raises unless model.backbone is a GLNet
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    if cfg.model.get('type') == 'ImageClassifier' and not backbone_only:
        from mmengine.runner import load_checkpoint
        model_cfg = dict(cfg.model)
        model_cfg.setdefault('data_preprocessor',
                             cfg.get('data_preprocessor'))
        classifier = MODELS.build(model_cfg)
        if checkpoint:
            # strict: every weight of the classifier comes from the file
            load_checkpoint(classifier, checkpoint, map_location='cpu',
                            strict=True)
        else:
            classifier.init_weights()
        return ClassifierLogits(classifier).eval(), 'classifier', ['logits']
    backbone = build_backbone(cfg, checkpoint or None)
    names = [f'out{i}' for i in range(len(backbone.out_indices))]
    return backbone.eval(), 'backbone', names


SHAPE_ASSERTS = ('_assert_scalar', 'sym_constrain_range')


def check_shape_guards(program):
    """Refuse a dynamic program that only holds for some sizes.

    ``torch.export`` may keep a graph valid only under conditions on the
    input size (e.g. divisibility); they become runtime assertions that the
    ONNX graph drops. Any such assertion, or a size range with an upper
    bound, is an error naming it.

    Returns:
        dict: The lowest size of each dynamic dimension.
    """
    from torch.utils._sympy.numbers import int_oo
    asserts = [str(node.args) for node in program.graph.nodes
               if node.op == 'call_function'
               and any(a in str(node.target) for a in SHAPE_ASSERTS)]
    bounded = {str(sym): str(vr)
               for sym, vr in program.range_constraints.items()
               if vr.upper != int_oo}
    if asserts or bounded:
        raise RuntimeError(
            'The traced graph holds only for some input sizes, so a dynamic '
            f'ONNX export would be wrong elsewhere: assertions {asserts[:5]}, '
            f'bounded sizes {bounded}')
    return {str(sym): int(vr.lower)
            for sym, vr in program.range_constraints.items()}


def export(module, out, shape, batch=1, dynamic=False, opset=18,
           output_names=('out0', )):
    """Write ``module`` to ``out`` with torch's ONNX exporter.

    Returns:
        torch.Tensor: The example input that was traced.
    """
    require_torch('onnx_export')
    from torch.export import Dim
    # A traced size of 1 is specialised by torch.export: trace batch 2.
    example = torch.randn(2 if dynamic else batch, 3, *shape)
    dynamic_shapes = None
    if dynamic:
        dynamic_shapes = {'x': {0: Dim.DYNAMIC, 2: Dim.DYNAMIC,
                                3: Dim.DYNAMIC}}
    # torch's symbolic-shape logger prints harmless tracebacks while tracing
    logging.getLogger('torch.fx.experimental.symbolic_shapes').setLevel(
        logging.ERROR)
    with torch.no_grad():
        program = torch.export.export(module, (example, ),
                                      dynamic_shapes=dynamic_shapes,
                                      strict=False)
    if dynamic:
        check_shape_guards(program)
    directory = osp.dirname(osp.abspath(out))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.onnx', dir=directory)
    os.close(fd)
    try:
        torch.onnx.export(program, (example, ), tmp, input_names=['input'],
                          output_names=list(output_names),
                          opset_version=opset, dynamo=True,
                          external_data=False, verbose=False)
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return example


def onnx_outputs(path, x):
    """Run the exported file with onnxruntime on ``x``."""
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x.detach().cpu().numpy()})


def torch_outputs(module, x):
    with torch.no_grad():
        out = module(x)
    return [t.numpy() for t in (out if isinstance(out, (tuple, list))
                                else [out])]


def relative_errors(onnx_outs, torch_outs):
    """Max abs difference / max abs PyTorch value, per output."""
    if len(onnx_outs) != len(torch_outs):
        raise AssertionError(f'{len(onnx_outs)} ONNX outputs vs '
                             f'{len(torch_outs)} PyTorch outputs')
    errors = []
    for o, t in zip(onnx_outs, torch_outs):
        if o.shape != t.shape:
            raise AssertionError(f'ONNX output shape {o.shape} vs PyTorch '
                                 f'{t.shape}')
        errors.append(float(np.abs(o - t).max() / np.abs(t).max()))
    return errors


def main(argv=None):
    args = parse_args(argv)
    require_torch('onnx_export')  # before any work
    if osp.exists(args.out) and not args.force:
        sys.exit(f'error: {args.out} exists; pass --force to overwrite it')
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if not args.checkpoint:
        print('warning: no --checkpoint, exporting random initial weights')
    module, what, names = build_model(cfg, args.checkpoint, args.backbone)
    example = export(module, args.out, args.shape, args.batch, args.dynamic,
                     args.opset, names)
    size = osp.getsize(args.out)
    shape = ('(N, 3, H, W) dynamic' if args.dynamic
             else tuple(example.shape))
    print(f'{args.out}: {what} of {osp.basename(args.config)}, outputs '
          f'{names}, input {shape}, {size / 2**20:.1f} MiB')
    if what == 'classifier':
        pre = cfg.get('data_preprocessor') or {}
        print(f'input: RGB images normalised with mean {pre.get("mean")} and '
              f'std {pre.get("std")} (the config\'s data_preprocessor)')
    if args.no_verify:
        return
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print('onnxruntime is not installed: not verified')
        return
    errors = relative_errors(onnx_outputs(args.out, example),
                             torch_outputs(module, example))
    print(f'onnxruntime vs PyTorch at {tuple(example.shape)}: max relative '
          f'error {max(errors):.2e}')
    if max(errors) > TOLERANCE:
        sys.exit(f'error: onnxruntime differs from PyTorch by '
                 f'{max(errors):.2e} > {TOLERANCE}')


if __name__ == '__main__':
    main()
