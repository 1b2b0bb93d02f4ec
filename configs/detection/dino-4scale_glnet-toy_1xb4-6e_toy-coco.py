# CPU toy: the GLNet-STL DINO-4scale config on the generated toy COCO
# (_base_/toy_coco.py) with the reduced GLNet and a 2+3-layer transformer
# (configs/_base_/toy_query_heads.py), batch 4 on one process, 6 epochs
# (about 1.7 s an iteration on 2 CPU cores: the 12 of the Mask R-CNN toy
# would take half an hour).
# The detector, its losses and matching, the data format and the evaluation
# (CocoMetric, bbox) are the real ones.
_base_ = [
    './dino-4scale_glnet-stl_8xb2-12e_coco.py',
    './_base_/toy_coco.py',
    '../_base_/toy_query_heads.py',
]
train_dataloader = {{_base_.toy_coco_train_dataloader}}
val_dataloader = {{_base_.toy_coco_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.toy_coco_val_evaluator}}
test_evaluator = val_evaluator
model = {{_base_.toy_dino_model}}
optim_wrapper = {{_base_.toy_query_optim_wrapper}}
auto_scale_lr = dict(enable=False)
# the upstream step (x0.1) before the last epoch
param_scheduler = [
    {{_base_.toy_warmup}},
    dict(type='MultiStepLR', end=6, milestones=[5]),
]
train_cfg = dict(max_epochs=6, val_interval=2)
default_hooks = {{_base_.toy_coco_default_hooks}}
randomness = dict(seed=0)
