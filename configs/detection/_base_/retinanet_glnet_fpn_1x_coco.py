# RetinaNet + FPN with a GLNet backbone, 1x schedule (12 epochs), batch 16
# (8 GPUs x 2): mmdet's Swin-T RetinaNet (FPN on strides 8-32 plus two extra
# levels from its input) with the GLNet optimiser of ./glnet.py. The
# per-size configs set the arch, the drop-path rate, the checkpoint and the
# neck input channels (stages 1-3).
_base_ = [
    'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py',
    './glnet.py',
]
custom_imports = {{_base_.glnet_custom_imports}}
# The per-size configs keep only the stages the neck uses (out_indices
# (1, 2, 3)): unused output norms would get no gradient under DDP.
model = dict(backbone={{_base_.glnet_backbone}})
optim_wrapper = {{_base_.glnet_optim_wrapper}}
auto_scale_lr = dict(enable=True, base_batch_size=16)
