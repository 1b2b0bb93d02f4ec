# Evaluate the official GLNet-STL-paramslot weights (model card: 82.1 top-1)
# with mmpretrain. Convert the released checkpoint once, then test:
#   python tools/model_converters/convert_official.py glnet_stl_paramslot.pth \
#       checkpoints/glnet-stl-paramslot_3rdparty_in1k.pth
#   mim test mmpretrain configs/classification/glnet-stl-paramslot_3rdparty_in1k.py \
#       --checkpoint checkpoints/glnet-stl-paramslot_3rdparty_in1k.pth
_base_ = './glnet-stl-paramslot_16xb128_in1k.py'
load_from = 'checkpoints/glnet-stl-paramslot_3rdparty_in1k.pth'
