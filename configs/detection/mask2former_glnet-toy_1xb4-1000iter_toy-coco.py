# CPU toy: the GLNet-STL Mask2Former (COCO instance) config on the generated
# toy COCO (_base_/toy_coco.py) with the reduced GLNet and a 64-dim head
# (configs/_base_/toy_query_heads.py), 160x160 images without the
# large-scale jitter, batch 4 on one process, 1000 iterations (12.5 epochs).
# The model, its losses and matching, the data format and the evaluation
# (CocoMetric, bbox and segm) are the real ones.
_base_ = [
    './mask2former_glnet-stl_8xb2-lsj-50e_coco.py',
    './_base_/toy_coco.py',
    '../_base_/toy_query_heads.py',
]
model = dict(
    data_preprocessor=dict(batch_augments=None),  # toy images: one size
    backbone={{_base_.toy_backbone}},
    panoptic_head={{_base_.toy_coco_mask2former_head}},
    panoptic_fusion_head=dict(num_things_classes=4),
    train_cfg=dict(num_points=1024),
    test_cfg=dict(max_per_image=20))
train_dataloader = {{_base_.toy_coco_train_dataloader}}
val_dataloader = {{_base_.toy_coco_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.toy_coco_val_evaluator}}
test_evaluator = val_evaluator
# the upstream steps (x0.1) at 0.9 and 0.95 of the schedule
max_iters = 1000
optim_wrapper = {{_base_.toy_query_optim_wrapper}}
auto_scale_lr = dict(enable=False)
param_scheduler = [
    {{_base_.toy_warmup}},
    dict(type='MultiStepLR', by_epoch=False, end=max_iters,
         milestones=[900, 950]),
]
train_cfg = dict(
    max_iters=max_iters, val_interval=250, dynamic_intervals=None)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=250, max_keep_ckpts=2))
randomness = dict(seed=0)
