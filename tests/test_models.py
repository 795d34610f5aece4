"""The networks of the paper: sizes, cost, shapes, the Degradation-aware Block,
the estimator designs and the configuration that describes them all."""
import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lupi_core.blocks import GDFN, MDTA
from lupi_core.complexity import gmac
from lupi_core.config import DB_SITES, PRESETS, ModelConfig
from lupi_core.models import build_backbone, build_student, build_teacher, count_parameters, restore_twice
from lupi_core.prior import DegradationAwareBlock, DegradationPredictor, PriorTone, PrivilegedEstimator
from lupi_core.restorer import Restorer

TINY = ModelConfig.preset("tiny")


# -- size and cost --------------------------------------------------------------------------
def test_paper_backbone_is_restormer_parameter_for_parameter():
    # Restormer's published count (the official implementation's 26,126,644).
    assert count_parameters(build_backbone(ModelConfig.preset("paper"))) == 26_126_644


def test_paper_backbone_gmac_matches_restormer():
    # On the meta device nothing is computed, only shapes: the count takes ~2 s, not ~10 s.
    with torch.device("meta"):
        backbone = build_backbone(ModelConfig.preset("paper")).eval()
        image = torch.empty(1, 3, 256, 256)
    assert gmac(backbone, image) == pytest.approx(154.88, abs=0.01)


def _independent_backbone_macs(model: Restorer, image: torch.Tensor) -> float:
    """Multiply-accumulates of convolutions plus MDTA's two matmuls, counted by hooks. MDTA and
    GDFN run their 1x1 convs as matmuls, so their convs are counted from the input's shape."""
    total = 0

    def conv_macs(conv: nn.Conv2d, pixels: int) -> int:
        k_h, k_w = conv.kernel_size
        return pixels * conv.out_channels * (conv.in_channels // conv.groups) * k_h * k_w

    def conv_hook(module: nn.Conv2d, _inputs, output):
        nonlocal total
        total += conv_macs(module, output.shape[0] * output.shape[-2] * output.shape[-1])

    def block_hook(module: nn.Module, inputs, _output):
        nonlocal total
        b, c, h, w = inputs[0].shape
        total += sum(conv_macs(conv, b * h * w) for conv in module.modules() if isinstance(conv, nn.Conv2d))
        if isinstance(module, MDTA):
            per_head = c // module.heads
            total += 2 * b * module.heads * per_head * per_head * h * w  # q @ k^T and attn @ v

    blocks = [m for m in model.modules() if isinstance(m, (MDTA, GDFN))]
    inside = {id(conv) for block in blocks for conv in block.modules()}
    handles = [m.register_forward_hook(conv_hook) for m in model.modules()
               if isinstance(m, nn.Conv2d) and id(m) not in inside]
    handles += [m.register_forward_hook(block_hook) for m in blocks]
    with torch.no_grad():
        model(image)
    for handle in handles:
        handle.remove()
    return total / 1e9


def test_gmac_agrees_with_an_independent_count_on_tiny():
    backbone = build_backbone(TINY).eval()
    image = torch.rand(1, 3, 64, 48)
    counted = gmac(backbone, image)
    assert counted > 0
    assert counted == pytest.approx(_independent_backbone_macs(backbone, image), rel=1e-9)
    # Doubling the area doubles the cost of a fully convolutional / channel-attention network.
    assert gmac(backbone, torch.rand(1, 3, 128, 48)) == pytest.approx(2 * counted, rel=1e-9)


def _restormer_mdta(m: MDTA, x: torch.Tensor) -> torch.Tensor:
    """MDTA as the Restormer paper writes it: L2-normalised q and k over pixels."""
    b, _, h, w = x.shape
    q, k, v = (t.reshape(b, m.heads, -1, h * w) for t in m.qkv_dwconv(m.qkv(x)).chunk(3, dim=1))
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    attn = ((q @ k.transpose(-2, -1)) * m.temperature).softmax(dim=-1)
    return m.project_out((attn @ v).reshape(b, -1, h, w))


def _restormer_gdfn(m: GDFN, x: torch.Tensor) -> torch.Tensor:
    x1, x2 = m.dwconv(m.project_in(x)).chunk(2, dim=1)
    return m.project_out(F.gelu(x1) * x2)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("heads", [1, 3])
def test_blocks_compute_restormers_formulas(heads, memory_format):
    torch.manual_seed(0)
    x = torch.randn(2, 12, 10, 14).to(memory_format=memory_format)
    attention, ffn = MDTA(12, heads), GDFN(12, 2.66)
    with torch.no_grad():
        attention.temperature.uniform_(0.5, 2.0)
        torch.testing.assert_close(attention(x), _restormer_mdta(attention, x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ffn(x), _restormer_gdfn(ffn, x), atol=1e-5, rtol=1e-5)


# -- shapes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("height,width", [(24, 40), (56, 8), (8, 72)])
def test_student_and_teacher_shapes_on_tiny(height, width):
    torch.manual_seed(0)
    degraded, clean = torch.rand(2, 3, height, width), torch.rand(2, 3, height, width)
    student, teacher = build_student(TINY).eval(), build_teacher(TINY).eval()
    with torch.no_grad():
        restored, prior = student(degraded)
        assert restored.shape == (2, 3, height, width)
        assert prior.shape == (2, TINY.prior_dim)
        restored_t, prior_t = teacher(degraded, clean)
        assert restored_t.shape == (2, 3, height, width)
        assert prior_t.shape == (2, TINY.prior_dim)
        assert torch.isfinite(restored).all() and torch.isfinite(restored_t).all()


def test_backbone_student_has_no_prior():
    student = build_student(TINY, with_predictor=False).eval()
    assert not student.has_predictor and len(student.restorer.dbs) == 0
    restored, prior = student(torch.rand(1, 3, 16, 16))
    assert prior is None and restored.shape == (1, 3, 16, 16)
    with pytest.raises(RuntimeError, match="no degradation predictor"):
        student.prior(torch.rand(1, 3, 16, 16))
    # The backbone-student's restorer has exactly the backbone's parameters.
    assert count_parameters(student) == count_parameters(build_backbone(TINY))


def test_db_sites_place_blocks():
    cfg = TINY.replace(db_sites=DB_SITES)
    restorer = Restorer(cfg)
    assert set(restorer.dbs) == set(DB_SITES)
    with torch.no_grad():
        assert restorer(torch.rand(1, 3, 16, 16), torch.randn(1, 512)).shape == (1, 3, 16, 16)
    assert set(Restorer(TINY).dbs) == {"latent", "decoder3", "decoder2"}


# -- the Degradation-aware Block ---------------------------------------------------------------
def test_db_is_identity_at_init():
    torch.manual_seed(0)
    block = DegradationAwareBlock(channels=16, prior_dim=512, hidden=32)
    features, prior = torch.randn(2, 16, 8, 8), torch.randn(2, 512)
    assert torch.equal(block(features, prior), features)


def test_restorer_with_fresh_dbs_ignores_the_prior():
    torch.manual_seed(0)
    restorer = Restorer(TINY).eval()
    image = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        assert torch.equal(restorer(image, torch.randn(1, 512)), restorer(image, torch.randn(1, 512)))


def test_db_implements_equation_2():
    torch.manual_seed(0)
    block = DegradationAwareBlock(channels=16, prior_dim=512, hidden=32)
    for param in block.parameters():
        nn.init.normal_(param, std=0.1)
    features, prior = torch.randn(2, 16, 8, 8), torch.randn(2, 512)
    with torch.no_grad():
        out = block(features, prior)
        # Eq. 1: [gamma, beta] = MLP(d), gamma parameterised as 1 + delta.
        gamma_beta = block.mlp(prior)
        gamma, beta = 1 + gamma_beta[:, :16, None, None], gamma_beta[:, 16:, None, None]
        # Eq. 2: F' = F + Conv3x3(GELU(gamma * F + beta)).
        expected = features + F.conv2d(F.gelu(gamma * features + beta), block.conv.weight, block.conv.bias,
                                       padding=1)
    assert not torch.allclose(out, features)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    # Different priors modulate differently, once the block is trained.
    with torch.no_grad():
        assert not torch.allclose(block(features, prior), block(features, torch.randn(2, 512)))


def test_restorer_without_prior_raises_clear_error():
    with pytest.raises(ValueError, match="needs a prior"):
        Restorer(TINY)(torch.rand(1, 3, 16, 16))
    # The plain backbone needs none.
    assert build_backbone(TINY)(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)


# -- the estimators -------------------------------------------------------------------------
@pytest.mark.parametrize("design", ["siamese", "concat", "add"])
def test_estimator_designs_give_512d_priors(design):
    torch.manual_seed(0)
    estimator = PrivilegedEstimator(TINY.replace(estimator_design=design)).eval()
    degraded, clean = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        prior = estimator(degraded, clean)
        assert prior.shape == (3, 512)
        # The clean image matters: D_T sees the privileged information.
        assert not torch.allclose(prior, estimator(degraded, torch.rand(3, 3, 32, 32)))


def test_estimator_designs_use_clean_differently():
    torch.manual_seed(0)
    siamese = PrivilegedEstimator(TINY.replace(estimator_design="siamese"))
    concat = PrivilegedEstimator(TINY.replace(estimator_design="concat"))
    add = PrivilegedEstimator(TINY.replace(estimator_design="add"))
    # Siamese: one shared 3-channel encoder run twice, fused from 2x width.
    assert siamese.encoder[0].in_channels == 3
    assert siamese.fusion[0].in_channels == 2 * TINY.estimator_channels[-1]
    # Concat: one 6-channel encoder over [I_d, I_c].
    assert concat.encoder[0].in_channels == 6
    assert concat.fusion[0].in_channels == TINY.estimator_channels[-1]
    # Add: one 3-channel encoder over I_d + I_c, so swapping the images changes nothing ...
    assert add.encoder[0].in_channels == 3 and add.fusion[0].in_channels == TINY.estimator_channels[-1]
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(add(a, b), add(b, a))
        # ... while siamese and concat tell degraded from clean.
        assert not torch.allclose(siamese(a, b), siamese(b, a))
        assert not torch.allclose(concat(a, b), concat(b, a))
        # Siamese's encoder literally sees the clean image alone: its features feed the fusion.
        seen = []
        handle = siamese.encoder.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
        siamese(a, b)
        handle.remove()
        assert len(seen) == 2 and torch.equal(seen[1], b)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_student_predictor_is_512d_in_every_preset(preset):
    cfg = ModelConfig.preset(preset)
    assert cfg.prior_dim == 512
    predictor = DegradationPredictor(cfg)
    assert predictor.head[-1].out_features == 512
    assert PrivilegedEstimator(cfg).head[-1].out_features == 512
    if preset == "tiny":
        with torch.no_grad():
            assert predictor(torch.rand(2, 3, 24, 16)).shape == (2, 512)


def test_estimator_downsamples_by_8():
    enc = DegradationPredictor(TINY).encoder
    assert enc(torch.rand(1, 3, 64, 40)).shape == (1, TINY.estimator_channels[-1], 8, 5)


# -- configuration --------------------------------------------------------------------------
def test_presets():
    assert ModelConfig.preset("paper") == ModelConfig()
    assert ModelConfig.preset("tiny").dim == 8
    assert ModelConfig.preset("small").dim == 24
    assert ModelConfig.preset("tiny", estimator_design="add").estimator_design == "add"
    assert ModelConfig.preset("tiny").preset_name() == "tiny"
    assert ModelConfig.preset("tiny", dim=16).preset_name() is None
    assert ModelConfig.preset("tiny", db_film_init="random").preset_name() == "tiny"  # starting values only
    with pytest.raises(ValueError, match="unknown preset"):
        ModelConfig.preset("huge")


@pytest.mark.parametrize("cfg", [ModelConfig(), TINY, TINY.replace(db_sites=("decoder1",), estimator_design="concat"),
                                 TINY.replace(tone_head=True)])
def test_json_round_trip(cfg):
    text = cfg.to_json()
    assert isinstance(json.loads(text), dict)
    again = ModelConfig.from_json(text)
    assert again == cfg
    assert isinstance(again.num_blocks, tuple) and isinstance(again.db_sites, tuple)


def test_from_json_rejects_unknown_fields():
    raw = json.loads(TINY.to_json())
    raw["colour"] = "blue"
    with pytest.raises(ValueError, match="colour"):
        ModelConfig.from_json(json.dumps(raw))


def test_config_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TINY.dim = 16  # type: ignore[misc]


@pytest.mark.parametrize("changes,message", [
    ({"heads": (1, 2, 5, 8)}, "heads"),
    ({"db_sites": ("latent", "encoder9")}, "encoder9"),
    ({"estimator_design": "triplet"}, "triplet"),
    ({"layernorm_type": "GroupNorm"}, "layernorm_type"),
])
def test_invalid_configs_raise(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig.preset("paper", **changes)


def test_a_residual_estimator_sees_the_degraded_image_and_the_residual():
    from lupi_core.prior import PrivilegedEstimator

    torch.manual_seed(0)
    residual = PrivilegedEstimator(ModelConfig.preset("tiny", estimator_input="residual")).eval()
    paper = PrivilegedEstimator(ModelConfig.preset("tiny")).eval()
    paper.load_state_dict(residual.state_dict())
    degraded, clean = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(residual(degraded, clean), paper(degraded, degraded - clean))
        assert not torch.allclose(residual(degraded, clean), paper(degraded, clean), atol=1e-4)
    with pytest.raises(ValueError, match="estimator input"):
        ModelConfig.preset("tiny", estimator_input="both")


def test_a_random_film_init_lets_the_prior_act_as_soon_as_the_conv_has_grown():
    """Both inits start as the identity; once DB's conv is non-zero (after one step), the output
    depends on the prior with the random FiLM init and not with the zero one (whose MLP must grow too)."""
    torch.manual_seed(0)
    features, prior, other = torch.randn(2, 8, 4, 4), torch.randn(2, 512), torch.randn(2, 512)
    for init, steers in (("zero", False), ("random", True)):
        block = DegradationAwareBlock(8, 512, 32, film_init=init)
        torch.testing.assert_close(block(features, prior), features)
        with torch.no_grad():
            block.conv.weight.normal_(0, 0.1)
            changed = (block(features, prior) - block(features, other)).abs().max().item()
        assert (changed > 1e-4) == steers, (init, changed)
    with pytest.raises(ValueError, match="FiLM init"):
        ModelConfig.preset("tiny", db_film_init="ones")


def test_tone_head_is_the_identity_at_init_and_a_colour_transform_the_prior_sets():
    """TC: image -> (1 + A(d)) image + b(d), per image; a new one changes nothing."""
    torch.manual_seed(0)
    tone = PriorTone(prior_dim=512, hidden=32)
    image, prior = torch.rand(2, 3, 8, 8), torch.randn(2, 512)
    assert torch.equal(tone(image, prior), image)
    nn.init.normal_(tone.mlp[-1].weight, std=0.1)
    with torch.no_grad():
        params = tone.mlp(prior)
        out = tone(image, prior)
    matrix, offset = params[:, :9].view(2, 3, 3), params[:, 9:]
    pixel = image[1, :, 4, 5]
    torch.testing.assert_close(out[1, :, 4, 5], pixel + matrix[1] @ pixel + offset[1])
    with torch.no_grad():
        assert not torch.allclose(tone(image, torch.randn(2, 512)), out)


def test_a_restorer_with_a_tone_head_starts_where_one_without_it_does():
    torch.manual_seed(0)
    plain = Restorer(TINY).eval()
    toned = Restorer(TINY.replace(tone_head=True)).eval()
    missing, unexpected = toned.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(key.startswith("tone.") for key in missing)
    image, prior = torch.rand(1, 3, 16, 16), torch.randn(1, 512)
    with torch.no_grad():
        torch.testing.assert_close(toned(image, prior), plain(image, prior))
    assert Restorer(TINY.replace(tone_head=True), with_prior=False).tone is None


def test_restore_twice_uses_the_counterfactual_prior_on_its_rows_and_the_next_samples_elsewhere():
    def restorer(images, priors):  # each output pixel: its prior's first value
        return priors[:, :1, None, None].expand_as(images)

    images, priors = torch.zeros(3, 3, 4, 4), torch.tensor([[1.0], [2.0], [3.0]])
    own, wrong = restore_twice(restorer, images, priors)
    assert own[:, 0, 0, 0].tolist() == [1.0, 2.0, 3.0] and wrong[:, 0, 0, 0].tolist() == [3.0, 1.0, 2.0]
    rows, others = torch.tensor([True, False, True]), torch.full((3, 3, 4, 4), 0.5)
    others[:, 0, 0, 0] = torch.tensor([10.0, 20.0, 30.0])
    _, wrong = restore_twice(restorer, images, priors, (rows, others), lambda image: image[:, 0, :1, 0])
    assert wrong[:, 0, 0, 0].tolist() == [10.0, 1.0, 30.0]
