# UPerNet, GLNet-STL from the authors' ImageNet weights, on your own semantic
# segmentation dataset of image and mask folders (docs/custom_dataset.md):
#   data_root/img_dir/{train,val}/NAME.jpg
#   data_root/ann_dir/{train,val}/NAME.png
# Masks are single-channel PNGs of class indices 0..K-1 (255: ignored).
# Copy this file next to it under a new name and edit the block below; the
# rest follows from it.
# ---- your dataset -----------------------------------------------------------
data_root = 'data/my_seg/'
classes = ('background', 'class_a', 'class_b')  # index i = classes[i]
train_img_dir, train_ann_dir = 'img_dir/train', 'ann_dir/train'
val_img_dir, val_ann_dir = 'img_dir/val', 'ann_dir/val'
img_suffix, seg_map_suffix = '.jpg', '.png'
reduce_zero_label = False  # True if 0 means "unlabelled" and class i is i+1
pretrained = 'checkpoints/glnet_stl.pth'  # the official ImageNet file
# -----------------------------------------------------------------------------
_base_ = './upernet_glnet-stl_8xb2-160k_ade20k-512x512.py'

num_classes = len(classes)
crop_size = (512, 512)
metainfo = dict(classes=classes)  # a palette is made up if you give none

data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(num_classes=num_classes),  # ignore_index: 255
    auxiliary_head=dict(num_classes=num_classes))

# ADE20K's pipelines without their reduce_zero_label=True: the dataset's
# setting above applies.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
dataset = dict(
    type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
    img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
    reduce_zero_label=reduce_zero_label)
train_dataloader = dict(
    batch_size=4,
    dataset=dict(
        dataset, _delete_=True, pipeline=train_pipeline,
        data_prefix=dict(img_path=train_img_dir, seg_map_path=train_ann_dir)))
val_dataloader = dict(
    dataset=dict(
        dataset, _delete_=True, pipeline=test_pipeline,
        data_prefix=dict(img_path=val_img_dir, seg_map_path=val_ann_dir)))
test_dataloader = val_dataloader

# fp32 (add --amp to tools/train.py on GPUs); the backbone learns at a tenth
# of the heads' rate, with GLNet's weight-decay rule.
optim_wrapper = dict(
    type='OptimWrapper', constructor='ModuleLrMultConstructor',
    paramwise_cfg=dict(module_lr_mult=dict(backbone=0.1)))
# ADE20K's 160k iterations at batch 16 are far too many for a small dataset:
# 20k at batch 4, warm-up 1500 then poly decay.
max_iters = 20000
train_cfg = dict(max_iters=max_iters, val_interval=2000)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(type='PolyLR', eta_min=0., power=1.0, begin=1500, end=max_iters,
         by_epoch=False),
]
default_hooks = dict(checkpoint=dict(interval=2000, max_keep_ckpts=2,
                                     save_best='mIoU'))
