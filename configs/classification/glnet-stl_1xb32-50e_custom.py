# GLNet-STL from the authors' ImageNet weights, fine-tuned on your own image
# folders (docs/custom_dataset.md):
#   data_root/train/CLASS/*.jpg  and  data_root/val/CLASS/*.jpg
# Copy this file next to it under a new name and edit the block below; the
# rest follows from it.
# ---- your dataset -----------------------------------------------------------
data_root = 'data/my_images/'
classes = ('class_a', 'class_b', 'class_c')  # the folder names, sorted; every
#                                              split has a folder per class
train_prefix, val_prefix = 'train', 'val'
pretrained = 'checkpoints/glnet_stl.pth'  # the official ImageNet file
# -----------------------------------------------------------------------------
_base_ = './glnet-stl_16xb128_in1k.py'

num_classes = len(classes)
# Top-5 accuracy needs more than 5 classes (mmpretrain's Accuracy fails with
# fewer): top-1 alone below that.
topk = (1, 5) if num_classes > 5 else (1, )

model = dict(
    # The backbone from the ImageNet file (its final BatchNorm included);
    # the head is new: num_classes outputs, initialised from scratch.
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    head=dict(num_classes=num_classes),
    # Mixup/CutMix are for long ImageNet schedules; fine-tuning without.
    train_cfg=None)
data_preprocessor = dict(num_classes=num_classes)

dataset = dict(type='CustomDataset', data_root=data_root,
               metainfo=dict(classes=classes))
train_dataloader = dict(
    batch_size=32, num_workers=4,
    dataset=dict(dataset, _delete_=True, data_prefix=train_prefix,
                 pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    batch_size=32, num_workers=4,
    dataset=dict(dataset, _delete_=True, data_prefix=val_prefix,
                 pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=topk)
test_evaluator = val_evaluator

# AdamW 2e-4 for a batch of 32 (scaled with the batch by --auto-scale-lr);
# the backbone at a tenth of the head's rate; 50 epochs of cosine decay,
# the first 500 iterations warming up (overlapping, as mmdet's schedules:
# any number of epochs works).
optim_wrapper = dict(
    constructor='ModuleLrMultConstructor',
    optimizer=dict(lr=2e-4),
    paramwise_cfg=dict(module_lr_mult=dict(backbone=0.1)))
auto_scale_lr = dict(base_batch_size=32)
train_cfg = dict(max_epochs=50, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=500),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=0,
         convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2,
                                     save_best='auto'))
