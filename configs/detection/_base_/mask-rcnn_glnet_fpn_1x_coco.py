# Mask R-CNN + FPN with a GLNet backbone, 1x schedule (12 epochs, single
# scale), batch 16 (8 GPUs x 2): mmdet's Swin-T recipe with the GLNet
# optimiser of ./glnet.py. The per-size configs set the arch, the drop-path
# rate, the checkpoint and the neck input channels.
_base_ = [
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
    './glnet.py',
]
custom_imports = {{_base_.glnet_custom_imports}}
model = dict(backbone={{_base_.glnet_backbone}})
optim_wrapper = {{_base_.glnet_optim_wrapper}}
auto_scale_lr = dict(enable=True, base_batch_size=16)
