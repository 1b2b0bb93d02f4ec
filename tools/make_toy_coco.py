"""Generate the toy COCO instance-segmentation dataset (see
glnet_mm/datasets/toy_coco.py).

    python tools/make_toy_coco.py [data/toy_coco] [--num-train 320]
        [--num-val 64] [--size 160 160] [--seed 0] [--force]
"""
from glnet_mm.datasets.toy_coco import main

if __name__ == '__main__':
    main()
