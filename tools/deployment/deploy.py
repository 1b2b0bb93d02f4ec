"""Deploy a GLNet detector, segmentor or classifier through mmdeploy: export
the whole model to ONNX (and a TensorRT engine on a GPU), then check it
against PyTorch with the same weights (docs/deploy.md).

mmdeploy's own APIs do the work (``torch2onnx``, ``to_backend``, its task
processors, backend models and ONNX Runtime ops library), driven by an
mmdeploy deploy config (``configs/deploy/``), so what a user knows of
mmdeploy applies. What this tool adds:

* **the stack check**: mmdeploy 1.3.1 exports only on torch 2.1 (the classic
  stack, ``requirements/classic.txt``); elsewhere the tool stops at once with
  the versions and the stack that works;
* **two rewriters** in place of mmdeploy's, whose exports compute something
  else than PyTorch: :func:`exact_adaptive_pooling` (mmdeploy's pools other
  windows: UPerNet's pyramid pooling; GLNet's own pooling takes its export
  path) and :func:`per_class_boxes` (mmdeploy's gives every class of a RoI
  the box of its top class: Mask R-CNN, Faster R-CNN);
* **the weights**: the model is built as training builds it
  (``init_weights``: a GLNet backbone loads its official ImageNet file through
  the config's ``init_cfg``, converted on load) unless ``--checkpoint`` holds
  all of its weights (a trained detector, segmentor or classifier: a file that
  does not fit is an error); the weights exported are saved as
  ``WORK_DIR/pytorch.pth``, which every comparison uses;
* **the comparison**: ``--compare IMG ...`` runs PyTorch and the exported
  model on images (per image: boxes and scores, masks' IoU, segmentation
  labels, class scores); ``--evaluate`` runs both over the config's test set
  through mmdeploy's backend model and the config's evaluator (per-image
  agreement and the metrics, e.g. CocoMetric or IoUMetric). The figures go to
  ``WORK_DIR/comparison.json``; the exit status is 1 when they are outside
  the tolerances below.

Example (the classic stack)::

    python tools/deployment/deploy.py \\
        configs/deploy/instance-seg_onnxruntime_dynamic.py \\
        configs/detection/mask-rcnn_glnet-stl_fpn_1x_coco.py demo.jpg \\
        --checkpoint mask_rcnn.pth --work-dir work_dirs/mask-rcnn-ort \\
        --compare demo.jpg
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

#: (major, minor) of the torch on which mmdeploy 1.3.1 exports (tested here:
#: the classic stack). On torch >= 2.9 ``torch.onnx.export`` is the dynamo
#: exporter by default, whose ``torch.export`` rejects mmdeploy's
#: ``dynamic_axes``; mmdeploy's rewriters hook private internals of the
#: TorchScript exporter, and its CI stopped at torch 2.0.
MMDEPLOY_TORCH = (2, 1)
STACK = 'the classic stack (Python 3.8, torch 2.1.2: requirements/classic.txt)'

#: The exported model counts as the same model as PyTorch when: every
#: detection scored at least ``--min-score`` on one side (and the top one of
#: each image) is found on the other, boxes differ by at most BOX_ATOL
#: pixels and scores by SCORE_ATOL, each mask's IoU with PyTorch's is at
#: least MASK_IOU, at least SEG_AGREE of the segmentation labels agree, and
#: every metric is within METRIC_ATOL.
#: Below ``--min-score`` (0.3) a two-stage detector's detections may differ
#: by mmdeploy's design: its RPN runs one NMS over the proposals of all FPN
#: levels (mmdet: one per level), so a few weak proposals differ
#: (docs/deploy.md).
BOX_ATOL, SCORE_ATOL, MASK_IOU, SEG_AGREE, METRIC_ATOL = 1e-3, 1e-3, .99, \
    .999, .005


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('deploy_cfg', help='an mmdeploy deploy config '
                        '(configs/deploy/)')
    parser.add_argument('model_cfg', help='a GLNet model config')
    parser.add_argument('img', help='an image to trace the export with')
    parser.add_argument('--checkpoint', help='all weights of the model (a '
                        'trained detector, segmentor or classifier); '
                        'without it the model is initialised as the config '
                        'says (the official GLNet file of its init_cfg)')
    parser.add_argument('--work-dir', required=True, help='output folder: '
                        'pytorch.pth, end2end.onnx, end2end.engine, '
                        'comparison.json')
    parser.add_argument('--device', default='cpu', help='cpu, or cuda:0 '
                        '(TensorRT)')
    parser.add_argument('--compare', nargs='+', metavar='IMG', default=[],
                        help='compare the exported model with PyTorch on '
                        'these images')
    parser.add_argument('--evaluate', action='store_true', help="run both "
                        "over the config's test set and compare per image "
                        'and metric')
    parser.add_argument('--min-score', type=float, default=0.3,
                        help='detections compared one to one: the top one '
                        'of each image and those scored at least this on '
                        'either side (default 0.3)')
    parser.add_argument('--force', action='store_true',
                        help='write into a non-empty --work-dir')
    parser.add_argument('--cfg-options', nargs='+', default={},
                        type=_option, help='override model config settings, '
                        'key=value (as tools/train.py)')
    args = parser.parse_args(argv)
    args.cfg_options = dict(args.cfg_options)
    return args


def _option(text):
    from mmengine.config import DictAction
    key, _, value = text.partition('=')
    if not value:
        raise argparse.ArgumentTypeError(f'{text!r}: use key=value')
    return key, DictAction._parse_iterable(value)


def check_stack():
    """mmdeploy's version, or a SystemExit naming what is wrong and the
    stack that works."""
    try:
        import mmdeploy
    except ImportError as e:
        raise SystemExit(f'mmdeploy is not installed ({e}): pip install '
                         f'"glnet_mm[deploy]" on {STACK}')
    from glnet_mm.utils.compat import torch_version
    if torch_version() != MMDEPLOY_TORCH:
        raise SystemExit(
            f'mmdeploy {mmdeploy.__version__} does not export on torch '
            f'{torch.__version__}: it works on torch '
            f'{".".join(map(str, MMDEPLOY_TORCH))}, {STACK}. (torch >= 2.9 '
            'exports with dynamo, whose torch.export rejects mmdeploy\'s '
            'dynamic_axes; mmdeploy 1.3.1 was released for torch <= 2.0.) '
            'The backbone and classifier alone export on torch >= 2.6 with '
            'tools/deployment/export_onnx.py.')
    return mmdeploy.__version__


def work_dir(path, force):
    if osp.isdir(path) and os.listdir(path) and not force:
        raise SystemExit(f'{path} is not empty (--force writes into it)')
    os.makedirs(path, exist_ok=True)
    return path


def load_configs(args):
    from mmdeploy.utils import load_config
    deploy_cfg, model_cfg = load_config(args.deploy_cfg, args.model_cfg)
    model_cfg.merge_from_dict(args.cfg_options)
    backbone = model_cfg.get('model', {}).get('backbone', {})
    if backbone.get('type') not in ('GLNet', 'mmpretrain.GLNet'):
        raise ValueError(f'{args.model_cfg}: its backbone is '
                         f'{backbone.get("type")!r}, not a GLNet')
    return deploy_cfg, model_cfg


def build_model(model_cfg, checkpoint=None):
    """The PyTorch model of ``model_cfg`` (SyncBN reverted to BN) with its
    weights: all of ``checkpoint``'s (a file that does not fit is an error),
    or the config's initialisation (seed 0)."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner.checkpoint import _load_checkpoint
    init_default_scope(model_cfg.get('default_scope', 'mmdet'))
    torch.manual_seed(0)  # the heads' random initialisation, if any
    model = revert_sync_batchnorm(MODELS.build(model_cfg.model))
    if checkpoint:
        state = _load_checkpoint(checkpoint, map_location='cpu')
        state = state.get('state_dict', state)
        own = model.state_dict()
        missing = sorted(set(own) - set(state))
        extra = sorted(set(state) - set(own))
        bad = [k for k in set(own) & set(state)
               if tuple(own[k].shape) != tuple(state[k].shape)]
        if missing or extra or bad:
            raise ValueError(
                f'{checkpoint} does not fit {model_cfg.filename}: '
                f'{len(missing)} weights missing (e.g. {missing[:3]}), '
                f'{len(extra)} unexpected ({extra[:3]}), {len(bad)} of '
                f'another shape ({bad[:3]}). A backbone-only file (the '
                'official GLNet release) goes through the config: '
                '--cfg-options model.backbone.init_cfg.checkpoint=FILE')
        model.load_state_dict(state)
    else:
        model.init_weights()
    return model


def build_weights(model_cfg, checkpoint, out):
    """Build the model (:func:`build_model`) and save its weights to
    ``out``: the file that the export and every comparison use."""
    model = build_model(model_cfg, checkpoint)
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(config=model_cfg.filename,
                              checkpoint=checkpoint or 'init_weights')), out)
    return out


def exact_adaptive_pooling(input, output_size):
    """``F.adaptive_avg_pool2d`` with PyTorch's windows at any input size
    (running sums: glnet_mm/models/utils/pooling.py), for mmdeploy's ONNX
    Runtime and TensorRT exports. mmdeploy's own rewriter replaces it by an
    ``avg_pool2d`` of kernel and stride ``floor(in / out)``: other windows,
    and another output size, wherever the input is not a multiple of the
    output (UPerNet's pyramid pooling, bins 1/2/3/6, on the 16x16 map of a
    512x512 input: 16/3 and 16/6), which the head's resize then hides: a
    silently wrong model; on a map smaller than the bins it fails."""
    from glnet_mm.models.utils.pooling import _pool_axis
    size = output_size if isinstance(output_size, (tuple, list)) else (
        output_size, output_size)
    h, w = (input.shape[d] if s is None else int(s)
            for d, s in zip((-2, -1), size))
    return _pool_axis(_pool_axis(input, w, -1), h, -2)


def per_class_boxes(self, rois, cls_scores, bbox_preds, batch_img_metas,
                    rcnn_test_cfg=None, rescale=False):
    """mmdet's ``BBoxHead.predict_by_feat`` for mmdeploy's ONNX Runtime and
    TensorRT exports, with each class's own box. mmdeploy's rewriter keeps,
    for a class-specific box head (Mask R-CNN's, Faster R-CNN's), only the
    box of each RoI's top class and gives it to every class of that RoI, so
    a detection that is not its RoI's top class has another class's box:
    other detections and another CocoMetric than PyTorch's. Here each RoI and
    class is a candidate box scored for that class alone, and the same NMS
    (mmdeploy's, with the head's test_cfg) picks among them, as mmdet does.
    Returns ``(dets, labels)`` as mmdeploy's rewriter does."""
    from mmdeploy.codebase.mmdet.deploy import get_post_processing_params
    from mmdeploy.core import FUNCTION_REWRITER
    from mmdeploy.mmcv.ops import multiclass_nms
    from mmdet.structures.bbox import get_box_tensor
    if self.custom_cls_channels or bbox_preds is None:
        raise NotImplementedError(
            f'{type(self).__name__}: deploy.py exports softmax box heads '
            'with box regression')
    ctx = FUNCTION_REWRITER.get_context()
    post = get_post_processing_params(ctx.cfg)
    scores = F.softmax(cls_scores, dim=-1)[..., :self.num_classes]
    boxes = get_box_tensor(self.bbox_coder.decode(
        rois[..., 1:], bbox_preds, max_shape=batch_img_metas[0]['img_shape']))
    batch, num_rois, classes = scores.shape
    if not self.reg_class_agnostic:  # (RoI, class) pairs, one class each
        boxes = boxes.reshape(batch, num_rois * classes, -1)
        scores = scores.reshape(batch, num_rois * classes, 1) * torch.eye(
            classes, dtype=scores.dtype).repeat(num_rois, 1)
    nms = rcnn_test_cfg.nms
    return multiclass_nms(
        boxes, scores, post.max_output_boxes_per_class,
        nms_type=nms.get('type'),
        iou_threshold=nms.get('iou_threshold', post.iou_threshold),
        score_threshold=rcnn_test_cfg.get('score_thr', post.score_threshold),
        pre_top_k=post.pre_top_k,
        keep_top_k=rcnn_test_cfg.get('max_per_img', post.keep_top_k))


def register_rewriters():
    """Register :func:`exact_adaptive_pooling` with mmdeploy for ONNX
    Runtime and TensorRT (a backend's rewriter wins over the default)."""
    from mmdeploy.core import FUNCTION_REWRITER
    if getattr(FUNCTION_REWRITER, '_glnet_mm_pooling', False):
        return  # once a process
    for backend in ('onnxruntime', 'tensorrt'):
        FUNCTION_REWRITER.register_rewriter(
            func_name='torch.nn.functional.adaptive_avg_pool2d',
            backend=backend)(exact_adaptive_pooling)
        FUNCTION_REWRITER.register_rewriter(
            func_name='mmdet.models.roi_heads.bbox_heads.bbox_head.'
            'BBoxHead.predict_by_feat', backend=backend)(per_class_boxes)
    FUNCTION_REWRITER._glnet_mm_pooling = True


def onnx_ops(path):
    """{domain: sorted op types} of an ONNX file ('' is standard ONNX)."""
    import onnx
    ops = {}
    for node in onnx.load(path, load_external_data=False).graph.node:
        ops.setdefault(node.domain or '', set()).add(node.op_type)
    return {d: sorted(o) for d, o in ops.items()}


def export(deploy_cfg, model_cfg, weights, img, work_dir, device='cpu'):
    """mmdeploy's torch2onnx (traced on the image file ``img``), then its
    to_backend where the backend is not ONNX Runtime; the backend files in
    ``work_dir``. Also the ONNX Runtime export of
    tools/analysis_tools/benchmark.py (``--backend onnxruntime``) and the
    TensorRT step of tools/misc/gpu_check.py."""
    from mmdeploy.apis import torch2onnx
    from mmdeploy.apis.utils import to_backend
    from mmdeploy.utils import get_backend, get_onnx_config
    backend = get_backend(deploy_cfg).value
    if backend == 'tensorrt' and not device.startswith('cuda'):
        raise SystemExit(f'{getattr(deploy_cfg, "filename", deploy_cfg)}: '
                         'TensorRT needs --device cuda:0')
    save_file = get_onnx_config(deploy_cfg)['save_file']
    torch2onnx(img, work_dir, save_file, deploy_cfg, model_cfg, weights,
               device=device)
    onnx_file = osp.join(work_dir, save_file)
    if backend == 'onnxruntime':
        return [onnx_file]
    return to_backend(backend, [onnx_file], work_dir=work_dir,
                      deploy_cfg=deploy_cfg, device=device)


# ------------------------------------------------------------- comparison
def compare_detections(ref, out, min_score):
    """Per-image agreement of two ``pred_instances``: each PyTorch detection
    matched to the exported one of its class nearest in box and score."""
    def arrays(p):
        return {k: v.detach().cpu().numpy() for k, v in p.items()
                if k in ('bboxes', 'scores', 'labels', 'masks')}
    ref, out = arrays(ref), arrays(out)
    free = np.ones(len(out['scores']), bool)
    box, score, ious, unmatched, compared = 0., 0., [], 0, 0
    for i in np.argsort(-ref['scores']):
        if compared and ref['scores'][i] < min_score - SCORE_ATOL:
            break  # the top detection is compared whatever its score
        compared += 1
        cand = np.flatnonzero(free & (out['labels'] == ref['labels'][i]))
        if len(cand):
            err = np.abs(out['bboxes'][cand] - ref['bboxes'][i]).max(1)
            cost = err + 100 * np.abs(out['scores'][cand] - ref['scores'][i])
            j = cand[cost.argmin()]
        if not len(cand) or cost.min() > 1:  # another object
            unmatched += 1
            continue
        free[j] = False
        box = max(box, float(np.abs(out['bboxes'][j] - ref['bboxes'][i]
                                    ).max()))
        score = max(score, abs(float(out['scores'][j] - ref['scores'][i])))
        if 'masks' in ref:
            a, b = ref['masks'][i].astype(bool), out['masks'][j].astype(bool)
            union = (a | b).sum()
            ious.append(float((a & b).sum() / union) if union else 1.)
    unmatched += int((out['scores'][free] >= min_score).sum())
    return dict(compared=compared,
                detections=int((ref['scores'] >= min_score).sum()),
                exported=int((out['scores'] >= min_score).sum()),
                unmatched=int(unmatched), box_max_abs=box,
                score_max_abs=score,
                mask_min_iou=min(ious) if ious else None)


def compare_sample(ref, out, min_score):
    """Agreement of one PyTorch and one exported data sample."""
    if 'pred_instances' in ref:
        return compare_detections(ref.pred_instances, out.pred_instances,
                                  min_score)
    if 'pred_sem_seg' in ref:
        a = ref.pred_sem_seg.data.cpu().numpy()
        b = out.pred_sem_seg.data.cpu().numpy()
        if a.shape != b.shape:
            return dict(label_agreement=0., shapes=[a.shape, b.shape])
        return dict(label_agreement=float((a == b).mean()),
                    label_miou=label_miou(a, b))
    return dict(score_max_abs=float(
        (ref.pred_score - out.pred_score).abs().max()))


def label_miou(ref, out):
    """The mean over classes (those in either label map) of the IoU of each
    class's pixels in ``out`` with its pixels in ``ref``: the mIoU of
    ``out`` taking ``ref`` (PyTorch's labels) as the ground truth."""
    ious = [((ref == c) & (out == c)).sum() / ((ref == c) | (out == c)).sum()
            for c in np.union1d(np.unique(ref), np.unique(out))]
    return float(np.mean(ious)) if ious else 1.


def failures(per_image, metrics=None):
    """What is outside the tolerances, as sentences (none: the same)."""
    bad = []
    for name, c in per_image.items():
        limits = [('unmatched', 0, '>'), ('box_max_abs', BOX_ATOL, '>'),
                  ('score_max_abs', SCORE_ATOL, '>'),
                  ('mask_min_iou', MASK_IOU, '<'),
                  ('label_agreement', SEG_AGREE, '<')]
        for key, limit, side in limits:
            v = c.get(key)
            if v is not None and (v > limit if side == '>' else v < limit):
                bad.append(f'{name}: {key} {v:.4g} (limit {limit})')
    for key, (ref, out) in (metrics or {}).items():
        if abs(ref - out) > METRIC_ATOL:
            bad.append(f'{key}: PyTorch {ref:.4f}, exported {out:.4f}')
    return bad


def compare_images(task, torch_model, backend_model, images, input_shape,
                   min_score):
    per_image, seconds = {}, {'pytorch': 0., 'exported': 0.}
    for img in images:
        inputs, _ = task.create_input(img, input_shape)
        with torch.no_grad():
            t0 = time.perf_counter()
            ref, = torch_model.test_step(inputs)
            t1 = time.perf_counter()
            out, = backend_model.test_step(inputs)
            t2 = time.perf_counter()
        seconds['pytorch'] += t1 - t0
        seconds['exported'] += t2 - t1
        per_image[osp.basename(img)] = compare_sample(ref, out, min_score)
    return per_image, seconds


def evaluate(task, torch_model, backend_model, model_cfg, min_score):
    """Both models over the config's test set: per-image agreement and each
    model's metrics (the config's test_evaluator)."""
    from mmengine.evaluator import Evaluator
    loader = task.build_dataloader(model_cfg.test_dataloader)
    evaluators = [Evaluator(model_cfg.test_evaluator) for _ in range(2)]
    for e in evaluators:
        e.dataset_meta = loader.dataset.metainfo
    per_image = {}
    with torch.no_grad():
        for data in loader:
            refs = torch_model.test_step(data)
            outs = backend_model.test_step(data)
            for e, samples in zip(evaluators, (refs, outs)):
                e.process(samples, data)
            for ref, out in zip(refs, outs):
                name = osp.basename(ref.metainfo.get('img_path', str(
                    len(per_image))))
                per_image[name] = compare_sample(ref, out, min_score)
    n = len(loader.dataset)
    ref, out = (e.evaluate(n) for e in evaluators)
    metrics = {k: (float(ref[k]), float(out[k])) for k in ref
               if isinstance(ref[k], (int, float)) and k in out}
    return per_image, metrics


def summary(per_image):
    """The worst of each figure over the images."""
    worst = {}
    for c in per_image.values():
        for k, v in c.items():
            if isinstance(v, (int, float)) and v is not None:
                low = k in ('mask_min_iou', 'label_agreement', 'label_miou')
                worst[k] = min(worst.get(k, v), v) if low else max(
                    worst.get(k, v), v)
    return worst


def compare_outputs(refs, outs, min_score):
    """:func:`compare_sample` of two models' outputs image by image, the
    worst over the images (:func:`summary`)."""
    return summary({i: compare_sample(r, o, min_score)
                    for i, (r, o) in enumerate(zip(refs, outs))})


def backend_model(deploy_cfg, model_cfg, files, device='cpu'):
    """mmdeploy's model of the exported ``files`` (:func:`export`), built
    by its task processor with the config's data preprocessor."""
    from mmdeploy.apis.utils import build_task_processor
    task = build_task_processor(model_cfg, deploy_cfg, device)
    return task.build_backend_model(files, task.update_data_preprocessor)


def main(argv=None):
    args = parse_args(argv)
    version = check_stack()
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.utils import get_backend, get_input_shape
    import glnet_mm  # noqa: F401  (registers GLNet)
    register_rewriters()
    deploy_cfg, model_cfg = load_configs(args)
    work_dir(args.work_dir, args.force)
    weights = build_weights(model_cfg, args.checkpoint,
                            osp.join(args.work_dir, 'pytorch.pth'))
    t0 = time.time()
    files = export(deploy_cfg, model_cfg, weights, args.img, args.work_dir,
                   args.device)
    report = dict(mmdeploy=version, torch=torch.__version__,
                  backend=get_backend(deploy_cfg).value, files=files,
                  export_seconds=round(time.time() - t0, 1),
                  onnx_ops=onnx_ops(osp.join(args.work_dir, osp.basename(
                      files[0]).rsplit('.', 1)[0] + '.onnx')))
    print(f'exported in {report["export_seconds"]} s: {files}; ONNX ops '
          f'outside the standard domain: '
          f'{ {d: o for d, o in report["onnx_ops"].items() if d} }')
    bad = []
    if args.compare or args.evaluate:
        task = build_task_processor(model_cfg, deploy_cfg, args.device)
        torch_model = task.build_pytorch_model(weights)
        backend_model = task.build_backend_model(
            files, task.update_data_preprocessor)
        if args.compare:
            per_image, seconds = compare_images(
                task, torch_model, backend_model, args.compare,
                get_input_shape(deploy_cfg), args.min_score)
            report.update(compare=per_image, compare_seconds=seconds,
                          compare_worst=summary(per_image))
            bad += failures(per_image)
        if args.evaluate:
            per_image, metrics = evaluate(task, torch_model, backend_model,
                                          model_cfg, args.min_score)
            report.update(evaluate=per_image, metrics=metrics,
                          evaluate_worst=summary(per_image))
            bad += failures(per_image, metrics)
        for key in ('compare_worst', 'evaluate_worst', 'metrics'):
            if key in report:
                print(f'{key}: {report[key]}')
    report['failures'] = bad
    with open(osp.join(args.work_dir, 'comparison.json'), 'w') as f:
        json.dump(report, f, indent=1)
    if bad:
        print('The exported model differs from PyTorch:\n  ' +
              '\n  '.join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
