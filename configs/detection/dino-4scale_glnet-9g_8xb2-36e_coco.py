# mmdet's 36-epoch DINO schedule (dino-4scale_r50_8xb2-36e_coco.py)
_base_ = './dino-4scale_glnet-9g_8xb2-12e_coco.py'
train_cfg = dict(max_epochs=36)
param_scheduler = [dict(type='MultiStepLR', end=36, milestones=[30])]
