"""GLNet's ImageNet models by name, through mmpretrain's ``ModelHub``.

After :func:`register_models` (which needs mmpretrain),
``mmpretrain.get_model('glnet-4g_3rdparty_in1k', pretrained=FILE)`` and
``mmpretrain.list_models('glnet*')`` know the GLNet models of the project's
model index (the classification metafiles).
"""
import os.path as osp
from typing import List

from ..utils.model_index import MIM_DIR, MODEL_INDEX, missing_index_error


def register_models() -> List[str]:
    """Register the project's model index with mmpretrain's ``ModelHub``.

    Idempotent. It also registers the token-labeling head
    (:mod:`glnet_mm.models.heads`) that two of the models use. Afterwards
    ``mmpretrain.get_model(name, pretrained=FILE_OR_URL)`` builds a GLNet
    model by name (``FILE_OR_URL``: a released official file, converted on
    load, or an mmpretrain checkpoint) and ``mmpretrain.list_models('glnet*')``
    lists them.

    Returns:
        list[str]: The registered model names.

    Raises:
        FileNotFoundError: The packaged model index is missing (an install
            without ``glnet_mm/.mim``).
        ValueError: Another model index already registered some of these
            names.
    """
    import yaml
    from mmpretrain.apis import ModelHub
    from modelindex.load_model_index import load

    import glnet_mm.models.heads  # noqa: F401  (TokenLabelingClsHead)

    if not osp.isfile(MODEL_INDEX):
        raise missing_index_error(MODEL_INDEX)
    # The ImageNet metafiles only: the index also lists the detection and
    # segmentation configs, which are no mmpretrain models.
    with open(MODEL_INDEX) as f:
        imported = yaml.safe_load(f)['Import']
    metafiles = [osp.join(MIM_DIR, path) for path in imported
                 if path.startswith('configs/classification/')]
    names = []
    for metafile in metafiles:
        index = load(metafile)
        index.build_models_with_collections()
        names += [model.name.lower() for model in index.models]
    known = [name for name in names if ModelHub.has(name)]
    if len(known) == len(names):
        return names
    if known:
        raise ValueError(
            f'ModelHub already has other models named {known[:5]}; cannot '
            f'register the glnet_mm model index {MODEL_INDEX}')
    for metafile in metafiles:
        ModelHub.register_model_index(metafile, config_prefix=MIM_DIR)
    return names

