"""Small synthetic datasets that let the toy configs train on a CPU."""
from .toy_ade import ToyADEDataset, make_toy_ade  # noqa: F401
