# Cascade Mask R-CNN + FPN with a GLNet backbone, 3x schedule (36 epochs) with
# the DETR-style multi-scale resize-and-crop training, batch 16 (8 GPUs x 2):
# the Swin/ConvNeXt setting (4conv-1fc box heads with SyncBN and GIoU loss in
# all three stages; mmdet's ConvNeXt-T config) with the GLNet optimiser of
# ./glnet.py. The per-size configs set the arch, the drop-path rate, the
# checkpoint and the neck input channels.
_base_ = [
    'mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py',  # noqa: E501
    './glnet.py',
]
custom_imports = {{_base_.glnet_custom_imports}}
model = dict(backbone={{_base_.glnet_backbone}})
optim_wrapper = {{_base_.glnet_optim_wrapper}}
auto_scale_lr = dict(enable=True, base_batch_size=16)
