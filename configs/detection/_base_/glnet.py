# GLNet's optimiser for every detection config in this folder; the shared
# settings (custom_imports, checkpoints, backbone, weight decay) come from
# configs/_base_/glnet.py.
_base_ = '../../_base_/glnet.py'

# The optimiser of hierarchical vision transformers on COCO (Swin): AdamW,
# lr 1e-4 for a batch of 16, weight decay 0.05 with GLNet's no-decay rule;
# mixed precision.
glnet_optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg={{_base_.glnet_paramwise_cfg}})
