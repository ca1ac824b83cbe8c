import math

import pytest

from aegen.config import (
    DataConfig,
    TrainConfig,
    apply_overrides,
    check_bounds,
    from_dict,
    to_dict,
)
from aegen.errors import ConfigError
from aegen.models.ae import AEConvConfig, AEMLPConfig
from aegen.runs import make_run_config


def test_unknown_key_names_the_allowed_ones():
    with pytest.raises(ConfigError) as e:
        from_dict(AEMLPConfig, {"code_dimm": 3}, "model")
    msg = str(e.value)
    assert "model.code_dimm" in msg and "model.code_dim" in msg and "model.hidden" in msg


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"code_dim": "two"}, "expected an integer"),
        ({"code_dim": 0}, "at least 1"),
        ({"code_dim": True}, "expected an integer"),
        ({"noise": "salt"}, "choose one of"),
        ({"noise_level": "nan"}, "finite"),
        ({"noise_level": -0.1}, ">= 0"),
        ({"hidden": "512,x"}, "expected an integer"),
        ({"recon_loss": "bce", "output": "linear"}, "sigmoid"),
    ],
)
def test_bad_values_are_refused(values, fragment):
    with pytest.raises(ConfigError, match=fragment):
        from_dict(AEMLPConfig, values, "model")


def test_values_are_coerced_from_strings():
    cfg = from_dict(
        AEMLPConfig, {"hidden": "64, 32", "code_dim": "3", "tied": "true", "noise_level": "0.5"}
    )
    assert (
        cfg.hidden == (64, 32) and cfg.code_dim == 3 and cfg.tied is True and cfg.noise_level == 0.5
    )


def test_round_trip_through_dict():
    cfg = AEConvConfig(channels=(8, 16), code_dim=5)
    assert from_dict(AEConvConfig, to_dict(cfg)) == cfg


def test_overrides_reach_every_section():
    run = make_run_config("ae-mlp", data="synthetic", epochs=3)
    run = apply_overrides(
        run, ["model.code_dim=2", "train.lr=3e-4", "data.val_size=10", "data.data_dir=none"]
    )
    assert run.model_config.code_dim == 2
    assert math.isclose(run.train.lr, 3e-4)
    assert run.train.epochs == 3
    assert run.data.val_size == 10 and run.data.data_dir is None and run.data.name == "synthetic"


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("model.nope=1", "unknown config key model.nope"),
        ("optim.lr=1", "keys look like"),
        ("train.batch_size=0", "at least 1"),
        ("train.lr=-1", "positive"),
        ("train.lr=inf", "finite"),
        ("train.epochs=1.5", "integer"),
        ("noequals", "key=value"),
    ],
)
def test_bad_overrides(override, fragment):
    run = make_run_config("ae-mlp")
    with pytest.raises(ConfigError, match=fragment):
        apply_overrides(run, [override])


def test_train_and_data_defaults_validate():
    check_bounds(TrainConfig(), "train")
    check_bounds(DataConfig(), "data")
    with pytest.raises(ConfigError):
        from_dict(TrainConfig, {"schedule": "linear"})


def test_unknown_model_lists_known_ones():
    with pytest.raises(ConfigError, match="ae-conv"):
        make_run_config("ae-nope")


@pytest.mark.parametrize("model", ["ae-conv", "vqvae"])
def test_conv_models_default_to_bf16_channels_last_and_can_turn_them_off(model):
    # on by default where docs/performance.md measured a gain at an equal loss
    run = make_run_config(model)
    assert run.train.amp == "auto" and run.train.channels_last is True
    run = apply_overrides(run, ["train.amp=off", "train.channels_last=false"])
    assert run.train.amp == "off" and run.train.channels_last is False


# ------------------------------------------------------------------ bounds on fields


@pytest.mark.parametrize(
    ("cls", "values", "fragment"),
    [
        (
            AEConvConfig,
            {"channels": "8,16,32"},
            r"model.channels must be 2 values, each at least 1",
        ),
        (AEConvConfig, {"channels": "8,0"}, r"each at least 1"),
        (TrainConfig, {"lr": 0}, r"model.lr must be positive, got 0"),
        (AEMLPConfig, {"sparsity_target": 1.0}, r"in \(0, 1\), got 1"),
    ],
)
def test_bounds_declared_on_fields_are_checked_by_from_dict(cls, values, fragment):
    with pytest.raises(ConfigError, match=fragment):
        from_dict(cls, values, "model")


def test_every_model_config_keeps_only_cross_field_rules_in_validate():
    """A bound written into validate() instead of on its field would not show in Bounds."""
    import dataclasses

    from aegen.registry import available, entry

    for name in available(None):
        cls = entry(name).config_cls
        numeric = [
            f.name
            for f in dataclasses.fields(cls)
            if f.type in ("int", "float", "tuple[int, ...]") and "bounds" not in f.metadata
        ]
        assert numeric == [], f"{name}: {numeric} have no declared bounds"


# ------------------------------------------------------------------ old names still load

OLD_VQVAE = {"num_codes": 16, "code_dim": 8, "hidden": 16, "res_hidden": 8, "res_blocks": 1}


def test_old_config_names_map_to_the_new_ones():
    from aegen.models.vqvae import VQVAEConfig
    from aegen.priors.pixelcnn import PixelCNNConfig
    from aegen.priors.pixelrnn import PixelRNNConfig

    vq = from_dict(VQVAEConfig, OLD_VQVAE, "model")
    assert (vq.codebook_dim, vq.channels, vq.res_dim) == (8, (8, 16), 8)
    cnn = from_dict(PixelCNNConfig, {"channels": 16, "layers": 3, "out_hidden": 32}, "model")
    assert (cnn.d_model, cnn.n_layers, cnn.head_dim) == (16, 3, 32)
    assert from_dict(PixelRNNConfig, {"hidden": 48}).d_model == 48
    with pytest.raises(ConfigError, match="old name of model.n_layers"):
        from_dict(PixelCNNConfig, {"layers": 3, "n_layers": 2}, "model")
