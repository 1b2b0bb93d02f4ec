"""GLNet's ImageNet models by name, through mmpretrain's ``ModelHub``.

After :func:`register_models` (which needs mmpretrain),
``mmpretrain.get_model('glnet-4g_3rdparty_in1k', pretrained=FILE)`` and
``mmpretrain.list_models('glnet*')`` know the GLNet models of the project's
model index (the classification metafiles).
"""
import os.path as osp
from typing import Dict, List

# The model index as packaged for mim (glnet_mm/.mim/, see pyproject.toml); its
# paths are relative to that folder.
MIM_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '.mim')
MODEL_INDEX = osp.join(MIM_DIR, 'model-index.yml')


def official_checkpoints() -> Dict[str, str]:
    """The authors' released ImageNet checkpoints of the model index: each
    ``*_3rdparty_in1k`` model of the classification metafile and its
    official download page (``Converted From: Weights``). Needs only PyYAML
    (the timm models name their weights from it,
    :mod:`glnet_mm.models.timm_models`).

    Returns:
        dict[str, str]: e.g. ``{'glnet-4g-tklb_3rdparty_in1k':
        'https://1drv.ms/u/...'}``, in the metafile's order.
    """
    import yaml
    path = osp.join(MIM_DIR, 'configs', 'classification', 'metafile.yml')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'The glnet_mm model index {path} is missing; reinstall glnet_mm '
            '(pip install .) so that glnet_mm/.mim is packaged')
    with open(path) as f:
        models = yaml.load(f, Loader=getattr(yaml, 'CSafeLoader',
                                             yaml.SafeLoader))['Models']
    return {m['Name']: m['Converted From']['Weights'] for m in models
            if 'Converted From' in m}


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
        raise FileNotFoundError(
            f'The glnet_mm model index {MODEL_INDEX} is missing; reinstall '
            'glnet_mm (pip install .) so that glnet_mm/.mim is packaged')
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

