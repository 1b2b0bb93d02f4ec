"""What a release states agrees with itself and with the tree: one version
(package, CHANGELOG, metafiles), a metafile entry for every config, no result
claimed for a model never trained, and every path the README and docs name."""
import glob
import os.path as osp
import re

import pytest
import yaml
from conftest import REPO

import glnet_mm

TASKS = ('classification', 'detection', 'segmentation')


def metafiles():
    with open(osp.join(REPO, 'model-index.yml')) as f:
        return [osp.join(REPO, p) for p in yaml.safe_load(f)['Import']]


@pytest.fixture(scope='module')
def index():
    """{metafile path: its YAML}."""
    out = {}
    for path in metafiles():
        with open(path) as f:
            out[path] = yaml.safe_load(f)
    return out


def models(index):
    return [m for data in index.values() for m in data['Models']]


def test_one_version():
    with open(osp.join(REPO, 'CHANGELOG.md')) as f:
        newest = re.search(r'^## (\S+)', f.read(), re.MULTILINE).group(1)
    assert newest == glnet_mm.__version__


def test_metafiles_cover_every_task_and_state_the_version(index):
    assert {osp.basename(osp.dirname(p)) for p in index} >= set(TASKS)
    for path, data in index.items():
        for collection in data['Collections']:
            assert collection['Paper']['URL'].startswith('https://arxiv.org/')
            code = collection['Code']
            assert code['Version'] == glnet_mm.__version__, path
            assert osp.isfile(osp.join(REPO, code['URL'])), path


def test_every_config_is_listed_once(index):
    listed = [m['Config'] for m in models(index)]
    assert len(listed) == len(set(listed))
    for config in listed:
        assert osp.isfile(osp.join(REPO, config)), config
    shipped = {osp.relpath(p, REPO) for task in TASKS for p in glob.glob(
        osp.join(REPO, 'configs', task, '**', '*.py'), recursive=True)
        if '_base_' not in p and 'toy' not in osp.basename(p)
        and '_custom' not in osp.basename(p)}  # templates for one's own data
    assert set(listed) == shipped
    names = [m['Name'] for m in models(index)]
    assert len(names) == len(set(names))


def test_no_result_without_a_trained_model(index):
    """Detection and segmentation configs are not trained yet: no Results,
    no Weights; each names the ImageNet model it starts from, an entry with
    the authors' weights. Classification Results only on entries whose
    weights exist (the authors' checkpoints)."""
    by_name = {m['Name']: m for m in models(index)}
    for m in models(index):
        if m['Config'].startswith('configs/classification/'):
            if 'Results' in m:
                assert 'Converted From' in m or 'Weights' in m, m['Name']
            continue
        assert 'Results' not in m and 'Weights' not in m, m['Name']
        pretrained = by_name[m['Metadata']['Pretrained']]
        assert 'Converted From' in pretrained, m['Name']
        arch = re.search(r'_glnet-(\w+?)_', m['Name']).group(1)
        assert pretrained['Name'] == f'glnet-{arch}_3rdparty_in1k'


# Repository paths as the README and docs write them (in backquotes or
# links): configs/..., tools/..., docs/..., .dev_scripts/..., tests/...
PATH = re.compile(r'(?<![\w./-])((?:configs|tools|docs|\.dev_scripts|tests|'
                  r'glnet_mm)/[\w./-]*\w)')


@pytest.mark.parametrize('doc', ['README.md', 'CHANGELOG.md'] + sorted(
    osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'docs', '*.md'))))
def test_paths_in_docs_exist(doc):
    """Every path a doc names exists; of the CHANGELOG, the newest release's
    section (older ones name the paths of their time)."""
    with open(osp.join(REPO, doc)) as f:
        text = f.read()
    if doc == 'CHANGELOG.md':
        text = re.split(r'^## ', text, flags=re.MULTILINE)[1]
    missing = sorted({p for p in PATH.findall(text)
                      if not glob.glob(osp.join(REPO, p))
                      and not glob.glob(osp.join(REPO, p + '*'))})
    assert not missing, f'{doc} names paths that do not exist: {missing}'
