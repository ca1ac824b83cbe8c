"""The feature CNN's config (aegen.models.feature_net)."""

import pytest

import aegen
from aegen.eval.features import FeatureNet, FeatureNetConfig


def test_feature_net_config_is_checked():
    with pytest.raises(aegen.ConfigError, match="feature_dim"):
        aegen.build_model("feature-cnn", feature_dim=1)
    assert "feature-cnn" not in aegen.available("model")  # not an autoencoder
    assert isinstance(aegen.build_model("feature-cnn", channels=(4, 8)), FeatureNet)
    assert FeatureNetConfig().feature_dim == 128
