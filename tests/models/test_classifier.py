"""The classifier on an autoencoder's features (aegen.models.classifier)."""

from __future__ import annotations

import pytest

import aegen
from aegen.models.classifier import encoder_parameters


@pytest.mark.parametrize("name", ["ae-mlp", "ae-conv"])
def test_encoder_parameters_are_what_features_use(name):
    model = aegen.build_model(name)
    found = {id(p) for p in encoder_parameters(model)}
    encoder = {id(p) for p in model.encoder.parameters()}
    assert found == encoder  # the decoder is excluded, the whole encoder included
