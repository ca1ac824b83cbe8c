"""Prior run directories: which VQ-VAE a prior belongs to, and images from the pair.

A prior's ``config.json`` records the codes it was trained on, and through them
the SHA-256 of the VQ-VAE's weights; :func:`prior_matches_vqvae` refuses a pair
that does not belong together before anything is loaded or drawn.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .checkpoint import MODEL, load, load_config, weights_hash
from .data.codes import read_meta
from .errors import CheckpointError, DataError, UserError
from .priors.sampling import sample_with

__all__ = ["find_vqvae", "load_prior", "prior_matches_vqvae", "sample_images"]


def load_prior(prior_dir: str | os.PathLike) -> torch.nn.Module:
    """The prior of a stage-3 run directory, in eval mode."""
    return load(prior_dir, family="prior")


def find_vqvae(prior_dir: str | os.PathLike, config: dict[str, Any]) -> list[Path]:
    """The VQ-VAE runs that hold the weights a prior run (``config``: its config.json)
    trained on the codes of, best first: where the prior's codes directory says they came
    from, then ``vqvae/`` beside the prior (a pipeline directory). Empty when none does.
    A copied pipeline directory has two such runs with the same weights, the original
    and its copy; the caller takes the first that holds what it needs.
    """
    codes = config.get("codes") if isinstance(config.get("codes"), dict) else {}
    want = codes.get("vqvae_weights_sha256")
    candidates = []
    if codes.get("dir"):
        try:
            if run := read_meta(Path(codes["dir"])).get("vqvae_run"):
                candidates.append(Path(run))
        except DataError:  # the codes were moved or removed: look beside the prior
            pass
    candidates.append(Path(prior_dir).parent / "vqvae")
    return [
        d
        for d in dict.fromkeys(c.resolve() for c in candidates)  # in order, each once
        if want and (d / MODEL).is_file() and weights_hash(d / MODEL) == want
    ]


def prior_matches_vqvae(prior_dir: str | os.PathLike, vqvae_dir: str | os.PathLike) -> None:
    """Refuse, with one line, a prior that was not trained on codes of this VQ-VAE."""
    prior_dir, vqvae_dir = Path(prior_dir), Path(vqvae_dir)
    cfg = load_config(prior_dir)
    if cfg.get("family") != "prior" or "codes" not in cfg:
        raise CheckpointError(f"{prior_dir}: not a prior run (train one with 'aegen train-prior')")
    family = load_config(vqvae_dir).get("family")
    if family not in (None, "vqvae"):
        raise CheckpointError(f"{vqvae_dir}: is a {family} run; this needs a vqvae run")
    if not (vqvae_dir / MODEL).is_file():
        raise CheckpointError(f"{vqvae_dir}: no {MODEL}")
    want, have = cfg["codes"].get("vqvae_weights_sha256"), weights_hash(vqvae_dir / MODEL)
    if want != have:
        raise UserError(
            f"the prior in {prior_dir} was trained on codes of another VQ-VAE "
            f"(weights {str(want)[:12]}…, not {have[:12]}… in {vqvae_dir}); "
            "encode with this VQ-VAE and train the prior again"
        )


def sample_images(
    prior_dir: str | os.PathLike,
    vqvae_dir: str | os.PathLike,
    n: int,
    generator: torch.Generator | None = None,
    return_codes: bool = False,
    **kw: Any,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``n`` new images (n, 1, 28, 28) in [0, 1] from the prior and VQ-VAE run directories.

    ``kw`` goes to the prior's ``sample`` (label, temperature, top_k, use_cache, guidance).
    A prior trained on another VQ-VAE's codes is refused. ``return_codes=True``
    also returns the (n, H, W) code grids. Both directories are loaded on every
    call; to sample repeatedly, load them once and call
    :func:`aegen.priors.sampling.sample_with`.
    """
    prior_matches_vqvae(prior_dir, vqvae_dir)
    prior, vqvae = load_prior(prior_dir), load(vqvae_dir, family="vqvae")
    return sample_with(prior, vqvae, n, generator, return_codes, **kw)
