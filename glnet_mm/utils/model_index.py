"""Where the packaged model index is (``glnet_mm/.mim``, see
pyproject.toml: links to the repository's model-index.yml and configs/),
and the authors' released checkpoints it names. Needs only PyYAML, when
called: the timm models (:mod:`glnet_mm.models.timm_models`) name their
weights from it, mmpretrain's models by name
(:mod:`glnet_mm.apis.model_hub`) register it."""
import os.path as osp
from typing import Dict

# paths in the index are relative to this folder
MIM_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '.mim')
MODEL_INDEX = osp.join(MIM_DIR, 'model-index.yml')


def missing_index_error(path):
    return FileNotFoundError(
        f'The glnet_mm model index {path} is missing; reinstall glnet_mm '
        '(pip install .) so that glnet_mm/.mim is packaged')


def official_checkpoints() -> Dict[str, str]:
    """The authors' released ImageNet checkpoints of the model index: each
    model of the classification metafile that was converted from theirs,
    and its official download page (``Converted From: Weights``).

    Returns:
        dict[str, str]: e.g. ``{'glnet-4g-tklb_3rdparty_in1k':
        'https://1drv.ms/u/...'}``, in the metafile's order.
    """
    import yaml
    path = osp.join(MIM_DIR, 'configs', 'classification', 'metafile.yml')
    if not osp.isfile(path):
        raise missing_index_error(path)
    with open(path) as f:
        models = yaml.load(f, Loader=getattr(yaml, 'CSafeLoader',
                                             yaml.SafeLoader))['Models']
    return {m['Name']: m['Converted From']['Weights'] for m in models
            if 'Converted From' in m}
