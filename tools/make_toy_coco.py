"""Generate the toy coco dataset (glnet_mm/datasets/toy_coco.py).

    python tools/make_toy_coco.py [OUT_DIR] [--num-train N] [--num-val N]
        [--size H [W]] [--seed S] [--force]
"""
from glnet_mm.datasets.toy_coco import main

if __name__ == '__main__':
    main()
