"""Generate the toy ade dataset (glnet_mm/datasets/toy_ade.py).

    python tools/make_toy_ade.py [OUT_DIR] [--num-train N] [--num-val N]
        [--size H [W]] [--seed S] [--force]
"""
from glnet_mm.datasets.toy_ade import main

if __name__ == '__main__':
    main()
