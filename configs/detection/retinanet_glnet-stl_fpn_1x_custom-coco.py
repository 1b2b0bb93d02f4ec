# RetinaNet + FPN, GLNet-STL from the authors' ImageNet weights, on your own
# COCO-format detection dataset (boxes only; docs/custom_dataset.md).
# Copy this file next to it under a new name and edit the block below; the
# rest follows from it.
# ---- your dataset -----------------------------------------------------------
data_root = 'data/my_coco/'
classes = ('class_a', )  # the categories' names, in the annotation file's
#                          order; one class needs the comma: ('name', )
train_ann_file = 'annotations/train.json'
train_img_prefix = 'images/train/'
val_ann_file = 'annotations/val.json'
val_img_prefix = 'images/val/'
pretrained = 'checkpoints/glnet_stl.pth'  # the official ImageNet file
# -----------------------------------------------------------------------------
_base_ = './retinanet_glnet-stl_fpn_1x_coco.py'

num_classes = len(classes)
metainfo = dict(classes=classes)

model = dict(
    backbone=dict(frozen_stages=1, init_cfg=dict(checkpoint=pretrained)),
    bbox_head=dict(num_classes=num_classes))

train_dataloader = dict(
    dataset=dict(
        data_root=data_root, metainfo=metainfo, ann_file=train_ann_file,
        data_prefix=dict(img=train_img_prefix)))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root, metainfo=metainfo, ann_file=val_ann_file,
        data_prefix=dict(img=val_img_prefix)))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + val_ann_file, metric='bbox')
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper', constructor='ModuleLrMultConstructor',
    paramwise_cfg=dict(module_lr_mult=dict(backbone=0.1)))
train_cfg = dict(max_epochs=12, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2,
                                     save_best='coco/bbox_mAP'))
