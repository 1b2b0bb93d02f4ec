# CPU toy: the GLNet-STL Mask2Former (ADE20K semantic) config on the
# generated toy ADE (_base_/toy_ade.py) with the reduced GLNet and a 64-dim
# head (configs/_base_/toy_query_heads.py), 128x128 crops, batch 8, 600
# iterations. The model, its losses and matching, the data format and the
# evaluation (IoUMetric) are the real ones.
_base_ = [
    './mask2former_glnet-stl_8xb2-160k_ade20k-512x512.py',
    './_base_/toy_ade.py',
    '../_base_/toy_query_heads.py',
]
custom_imports = {{_base_.toy_ade_custom_imports}}
data_preprocessor = dict(size={{_base_.toy_ade_crop_size}})
model = dict(
    data_preprocessor=data_preprocessor,
    backbone={{_base_.toy_backbone}},
    decode_head={{_base_.toy_ade_mask2former_head}})
train_dataloader = {{_base_.toy_ade_train_dataloader}}
val_dataloader = {{_base_.toy_ade_val_dataloader}}
test_dataloader = val_dataloader
test_pipeline = {{_base_.toy_ade_test_pipeline}}  # mmseg's inference API
optim_wrapper = {{_base_.toy_query_optim_wrapper}}
param_scheduler = [
    {{_base_.toy_warmup}},
    dict(type='PolyLR', eta_min=0., power=0.9, begin=50,
         end={{_base_.toy_ade_max_iters}}, by_epoch=False),
]
train_cfg = {{_base_.toy_ade_train_cfg}}
default_hooks = {{_base_.toy_ade_default_hooks}}
randomness = dict(seed=0)
