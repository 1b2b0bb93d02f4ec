# Evaluate the official GLNet-4G token-labeling weights (model card: 84.4
# top-1) with mmpretrain. The released file loads as it is (converted on load):
#   mim test mmpretrain configs/classification/glnet-4g-tklb_3rdparty_in1k.py \
#       --checkpoint checkpoints/glnet_4g_tklb.pth
# Evaluation only: token-labeling training needs per-token teacher labels
# that are not public (docs/classification.md).
_base_ = './glnet-4g_16xb128_in1k.py'
# configs/_base_/glnet.py's imports, and the token-labeling head
custom_imports = dict(
    imports=[
        'glnet_mm', 'glnet_mm.checkpoint.process_wide', 'glnet_mm.engine',
        'glnet_mm.models.heads'
    ],
    allow_failed_imports=False)
# The token-labeling classifier pools the last stage itself: no neck.
model = dict(
    backbone=dict(drop_path_rate=0.1),
    neck=None,
    head=dict(
        _delete_=True,
        type='TokenLabelingClsHead',
        num_classes=1000,
        in_channels=512,
        aux_weight=0.5))
load_from = 'checkpoints/glnet_4g_tklb.pth'
