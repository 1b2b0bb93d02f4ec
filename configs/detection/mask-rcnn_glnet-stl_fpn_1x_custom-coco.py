# Mask R-CNN + FPN, GLNet-STL from the authors' ImageNet weights, on your own
# COCO-format instance-segmentation dataset (docs/custom_dataset.md).
# Copy this file next to it under a new name and edit the block below; the
# rest follows from it.
# ---- your dataset -----------------------------------------------------------
data_root = 'data/my_coco/'
classes = ('class_a', 'class_b', 'class_c')  # the categories' names, in the
#                                             annotation file's order
train_ann_file = 'annotations/train.json'
train_img_prefix = 'images/train/'
val_ann_file = 'annotations/val.json'
val_img_prefix = 'images/val/'
pretrained = 'checkpoints/glnet_stl.pth'  # the official ImageNet file
# -----------------------------------------------------------------------------
_base_ = './mask-rcnn_glnet-stl_fpn_1x_coco.py'

num_classes = len(classes)
metainfo = dict(classes=classes)  # a palette is made up if you give none

model = dict(
    # Small datasets: freeze the stem and stage 0 (low-level filters that
    # ImageNet already taught; fewer weights to over-fit).
    backbone=dict(frozen_stages=1, init_cfg=dict(checkpoint=pretrained)),
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes),
        mask_head=dict(num_classes=num_classes)))

train_dataloader = dict(
    dataset=dict(
        data_root=data_root, metainfo=metainfo, ann_file=train_ann_file,
        data_prefix=dict(img=train_img_prefix)))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root, metainfo=metainfo, ann_file=val_ann_file,
        data_prefix=dict(img=val_img_prefix)))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + val_ann_file)
test_evaluator = val_evaluator

# fp32, as on any device (add --amp to tools/train.py on GPUs); the backbone
# learns at a tenth of the heads' rate, with the weight-decay rule of
# configs/_base_/glnet.py: ImageNet features need only a nudge.
optim_wrapper = dict(
    type='OptimWrapper', constructor='ModuleLrMultConstructor',
    paramwise_cfg=dict(module_lr_mult=dict(backbone=0.1)))
# The 1x schedule (12 epochs) of COCO's 118k images; a dataset of a few
# thousand images needs more epochs: e.g. 36 with the lr steps at 27 and 33.
train_cfg = dict(max_epochs=12, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2,
                                     save_best='coco/segm_mAP'))
