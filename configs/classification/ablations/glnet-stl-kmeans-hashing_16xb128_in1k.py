# Ablation "k-means clustering" of GLNet-STL (paper, ablation table): hard
# k-means (5 Lloyd steps) from hashing-initialised slots.
_base_ = '../glnet-stl_16xb128_in1k.py'
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True, base='stl', slot_init='hashing',
            clustering='kmeans')))
