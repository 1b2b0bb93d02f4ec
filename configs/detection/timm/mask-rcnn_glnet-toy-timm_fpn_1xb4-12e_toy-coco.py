# The CPU toy Mask R-CNN with GLNet as a timm model (docs/timm.md; its own
# folder: the other configs of detection/ are GLNet's own): the same
# detector and data as mask-rcnn_glnet-toy_fpn_1xb4-12e_toy-coco.py, its
# backbone built by mmpretrain's TIMMBackbone from the timm name glnet_stl
# with the toy arch ('glnet_mm' in custom_imports: the GLNet models are in
# timm once TIMMBackbone imports it; needs timm >= 1.0.3 and mmpretrain).
# The maps are the raw stage outputs (no output norms), strides 4-32.
_base_ = '../mask-rcnn_glnet-toy_fpn_1xb4-12e_toy-coco.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.TIMMBackbone',
        model_name='glnet_stl',
        arch='toy',
        features_only=True,
        out_indices=(0, 1, 2, 3),
        pretrained=False))
