"""tools/visualization/visualize_slots.py: k-medoids, hook capture, the PNG grid for a
classifier and for the backbone of a detector config."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from conftest import load_tool, needs
from PIL import Image

from glnet_mm import GLNet
from glnet_mm.datasets.toy_imagefolder import render_toy_shape

mmcv = needs('mmcv')
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY_CONFIG = osp.join(REPO, 'configs', 'classification',
                      'glnet-toy_1xb64-20e_toy-shapes.py')


@pytest.fixture(scope='module')
def vis():
    return load_tool('visualization/visualize_slots')


@pytest.fixture
def image(tmp_path):
    path = str(tmp_path / 'triangle.png')
    Image.fromarray(render_toy_shape(
        'triangle', np.random.default_rng(3), 64)).save(path)
    return path


def is_medoid_of_its_cluster(dist, medoids, labels):
    for c, m in enumerate(medoids):
        members = np.flatnonzero(labels == c)
        costs = dist[np.ix_(members, members)].sum(1)
        if labels[m] != c or not np.isclose(dist[m, members].sum(),
                                            costs.min()):
            return False
    return True


def test_kmedoids_finds_the_groups(vis):
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [20, 0], [0, 20], [20, 20]])
    sizes = [9, 5, 12, 7]
    points = np.concatenate([c + rng.normal(0, 1, (n, 2))
                             for c, n in zip(centres, sizes)])
    truth = np.repeat(np.arange(4), sizes)
    dist = np.linalg.norm(points[:, None] - points[None], axis=-1)
    medoids, labels = vis.kmedoids(dist, 4)
    assert sorted(truth[medoids]) == [0, 1, 2, 3]
    assert np.array_equal(truth[medoids][labels], truth)  # same partition
    assert is_medoid_of_its_cluster(dist, medoids, labels)
    assert list(truth[medoids]) == [2, 0, 3, 1]  # largest cluster first
    with pytest.raises(ValueError, match='k must be'):
        vis.kmedoids(dist, 0)
    with pytest.raises(ValueError, match='square'):
        vis.kmedoids(dist[:3], 2)


def test_default_blocks_follow_the_paper(vis):
    assert vis.default_blocks(GLNet('stl')) == [2, 5, 10]
    assert vis.default_blocks(GLNet('4g')) == [2, 5]  # block 10: token MHSA
    assert vis.default_blocks(GLNet('toy')) == [1, 2, 3, 4]
    assert vis.default_blocks(GLNet(dict(base='toy', branches='local'))) == []


def test_capture_is_free_and_leaves_no_hooks(vis):
    net = GLNet('toy').eval()
    block = net.stages[0].blocks[0]
    assert not list(block.cluster_weights.parameters())
    assert not any('cluster_weights' in k for k in net.state_dict())
    maps = vis.capture_assignments(net, torch.randn(1, 3, 40, 56), [1, 3])
    assert maps[1].shape == (64, 10, 14) and maps[3].shape == (64, 3, 4)
    # soft clustering: every slot's weights are a distribution over pixels
    assert torch.allclose(maps[1].sum((1, 2)), torch.ones(64), atol=1e-5)
    for m in net.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    with pytest.raises(ValueError, match=r'clustering in blocks \[1, 2, 3, 4'):
        vis.capture_assignments(net, torch.randn(1, 3, 32, 32), [5])


def test_classifier_figure(vis, image, tmp_path):
    MODELS = needs('mmpretrain.registry').MODELS
    cfg = Config.fromfile(TOY_CONFIG)
    model = MODELS.build(cfg.model)
    for p in model.parameters():  # weights unlike the default init
        p.data.normal_(0, 0.2)
    checkpoint = str(tmp_path / 'classifier.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), checkpoint)
    out = str(tmp_path / 'figure' / 'slots.png')
    results = vis.visualize(TOY_CONFIG, image, out, checkpoint,
                            short_side=64)
    assert sorted(results) == [1, 2, 3, 4]  # every GLMix block of 'toy'
    png = mmcv.imread(out)
    assert png.shape == (4 * 64, 6 * 64, 3)  # rows: blocks; 2 + 4 tiles
    assert png.std() > 10
    # the checkpoint's weights were used
    _, x = vis.load_image(image, 64, cfg.data_preprocessor)
    own = vis.capture_assignments(model.backbone.eval(), x, [1, 2, 3, 4])
    for b, r in results.items():
        assert torch.allclose(r['maps'], own[b], atol=1e-5)
        medoids = r['medoids']
        assert len(set(medoids)) == 4 and all(0 <= s < 64 for s in medoids)
        assert is_medoid_of_its_cluster(vis.slot_distances(r['maps']),
                                        medoids, r['labels'])
    # representative slots are framed in their colour in the slot panels
    tile = png[:64, 2 * 64:3 * 64, ::-1]  # block 1, first medoid (RGB)
    assert np.all(tile[-1, 8:-8] == vis.COLOURS[0])
    with pytest.raises(FileExistsError, match='refusing to overwrite'):
        vis.visualize(TOY_CONFIG, image, out, checkpoint)


def test_detector_backbone_figure(vis, image, tmp_path):
    needs('mmdet')
    config = tmp_path / 'retinanet_glnet-toy.py'
    config.write_text(
        "_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py']\n"
        "custom_imports = dict(imports=['glnet_mm'], "
        'allow_failed_imports=False)\n'
        'model = dict(\n'
        "    backbone=dict(_delete_=True, type='GLNet', arch='toy',\n"
        '                  out_indices=(1, 2, 3)),\n'
        '    neck=dict(in_channels=[64, 128, 256]))\n')
    net = GLNet('toy', out_indices=(1, 2, 3)).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.2)
    state = {f'backbone.{k}': v for k, v in net.state_dict().items()}
    state['neck.lateral_convs.0.conv.weight'] = torch.zeros(1)
    checkpoint = str(tmp_path / 'detector.pth')
    torch.save(dict(state_dict=state), checkpoint)
    out = str(tmp_path / 'det_slots.png')
    results = vis.visualize(str(config), image, out, checkpoint, blocks=[2],
                            num_medoids=3, short_side=96)
    assert mmcv.imread(out).shape == (96, 5 * 96, 3)
    _, x = vis.load_image(image, 96, Config.fromfile(
        str(config)).model.data_preprocessor)
    own = vis.capture_assignments(net, x, [2])[2]
    assert torch.allclose(results[2]['maps'], own, atol=1e-5)
    assert len(results[2]['medoids']) == 3
