# Evaluate the official GLNet-STL weights (model card: 82.5 top-1) with
# mmpretrain. Convert the released checkpoint once, then test:
#   python tools/model_converters/convert_official.py glnet_stl.pth \
#       checkpoints/glnet-stl_3rdparty_in1k.pth
#   mim test mmpretrain configs/classification/glnet-stl_3rdparty_in1k.py \
#       --checkpoint checkpoints/glnet-stl_3rdparty_in1k.pth
_base_ = './glnet-stl_16xb128_in1k.py'
load_from = 'checkpoints/glnet-stl_3rdparty_in1k.pth'
