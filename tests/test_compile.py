"""torch.compile: the backbone is one graph (no breaks) in inference and in
training, and the compiled model computes what the eager one does."""
import pytest
import torch
import torch._dynamo as dynamo

from glnet_mm import GLNet

SMALL = dict(depths=[1, 1, 2, 1], channels=[32, 64, 96, 128])
ARCHS = {
    'stl': dict(SMALL, base='stl'),
    '4g': dict(SMALL, base='4g'),  # stage 3: a glmix and an mha_nchw block
    'paramslot': dict(SMALL, base='stl_paramslot'),
}


@pytest.mark.parametrize('train', [False, True])
@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_no_graph_breaks(arch, train):
    dynamo.reset()
    model = GLNet(ARCHS[arch], drop_path_rate=0.1 if train else 0.)
    model.train(train)
    x = torch.randn(2, 3, 64, 96, requires_grad=train)
    with torch.set_grad_enabled(train):
        explained = dynamo.explain(model)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


def test_compiled_matches_eager():
    torch.manual_seed(0)
    model = GLNet(ARCHS['4g']).eval()
    x = torch.randn(2, 3, 64, 96)
    dynamo.reset()
    compiled = torch.compile(model)
    with torch.no_grad():
        for ref, out in zip(model(x), compiled(x)):
            torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
