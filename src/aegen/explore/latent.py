"""The autoencoder and VAE page: the test set's codes as a map, decoding any point of it live.

The map is the latent itself when it is 2-D; otherwise the plane through the
codes' mean spanned by their first two principal components, and a point p on
it is the code ``center + p @ basis`` (the page does that sum, then asks for a
decode). Sliders move single latent dimensions — all of them up to 16, else the
16 whose codes vary most — around a chosen image's code. For a VAE the picked
image also brings its posterior q(z|x) = N(μ, diag σ²), drawn on the map as the
2σ ellipse of its projection.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.loader import to_float
from ..latent import lerp, slerp
from .pages import ModelPage, field_float_list, field_int, pixels

__all__ = ["LatentPage"]

MAX_SLIDERS = 16
MAX_PATH_STEPS = 33
STATIC_GRID = 20  # the exported page's precomputed decodes: a STATIC_GRID² grid over the map


class LatentPage(ModelPage):
    """An ``ae`` or ``vae`` run: ``images`` (N, 28, 28) uint8 test images, ``labels`` (N,)."""

    kind = "latent"

    def prepare(self) -> None:
        model, images = self.model, self.images
        self.is_vae = getattr(model, "family", "") == "vae"
        with torch.no_grad():
            mu, logvar = self._posterior(to_float(images))  # (N, D) each
        self.codes, self.logvar = mu, logvar
        self.dim = mu.shape[1]
        self.center, self.basis = self._plane(mu)  # (D,), (2, D)
        self.points = (mu - self.center) @ self.basis.T  # (N, 2)
        lo = torch.quantile(self.points, 0.01, dim=0)
        hi = torch.quantile(self.points, 0.99, dim=0)
        pad = 0.15 * (hi - lo).clamp_min(1e-3)
        self.extent = torch.stack([lo - pad, hi + pad])  # (2, 2): [[xmin, ymin], [xmax, ymax]]
        std = mu.std(0) if mu.shape[0] > 1 else torch.ones(self.dim)
        order = torch.argsort(std, descending=True)[:MAX_SLIDERS]
        self.slider_dims = (
            sorted(order.tolist()) if self.dim > MAX_SLIDERS else list(range(self.dim))
        )
        mean = mu.mean(0)
        spread = 3 * std.clamp_min(1e-3)
        self.slider_low, self.slider_high = mean - spread, mean + spread

    # ------------------------------------------------------------------ the model

    def _posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(μ, log σ²) for a VAE, (code, None) for an autoencoder; in chunks of 500 images."""
        mus, logvars = [], []
        for part in x.split(500):
            if self.is_vae:
                mu, logvar = self.model.encoder_params(part)
                mus.append(mu.float())
                logvars.append(logvar.float())
            else:
                mus.append(self.model.encode(part).float().flatten(1))
        return torch.cat(mus), torch.cat(logvars) if logvars else None

    def _plane(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The map's origin and axes: the latent's own for D = 2, else mean and top-2 PCs."""
        d = codes.shape[1]
        if d <= 2:
            return torch.zeros(d), torch.eye(2, d)
        center = codes.mean(0)
        # vh: (min(N, D), D); a single code (a --limit or --points of 1) spans no direction,
        # and the full (D, D) basis still gives the map two axes
        full = codes.shape[0] < 2
        _, _, vh = torch.linalg.svd(codes - center, full_matrices=full)
        basis = vh[:2]
        # a sign convention, so the same run draws the same map every time
        signs = torch.sign(basis[torch.arange(2), basis.abs().argmax(1)])
        return center, basis * signs[:, None]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) codes → (B, 1, 28, 28) images in [0, 1]."""
        return self.model.decode(z.float()).float().clamp(0, 1)

    # ------------------------------------------------------------------ actions

    def info(self) -> dict[str, Any]:
        return {
            **self.images_info(),
            "vae": self.is_vae,
            "dim": self.dim,
            "points": [[round(a, 4), round(b, 4)] for a, b in self.points.tolist()],
            "projection": "latent" if self.dim <= 2 else "pca",
            "center": self.center.tolist(),
            "basis": self.basis.tolist(),
            "extent": self.extent.tolist(),
            "sliders": [
                {"dim": d, "low": float(self.slider_low[d]), "high": float(self.slider_high[d])}
                for d in self.slider_dims
            ],
        }

    def act_decode(self, body: dict[str, Any]) -> dict[str, Any]:
        z = field_float_list(body, "z", self.dim)
        return {"image": pixels(self.decode(z[None])[0])}

    def act_image(self, body: dict[str, Any]) -> dict[str, Any]:
        i = self.field_index(body)
        z = self.codes[i]
        out: dict[str, Any] = {
            "index": i,
            "label": int(self.labels[i]),
            "image": pixels(self.images[i]),
            "recon": pixels(self.decode(z[None])[0]),
            "z": z.tolist(),
            "point": self.points[i].tolist(),
        }
        if self.logvar is not None:
            var = self.logvar[i].exp()  # (D,) σ²
            cov = (self.basis * var) @ self.basis.T  # (2, 2): the posterior projected on the map
            out["std"] = var.sqrt().tolist()
            out["cov2"] = cov.tolist()
        return out

    def act_path(self, body: dict[str, Any]) -> dict[str, Any]:
        a, b = self.field_index(body, "a"), self.field_index(body, "b")
        steps = field_int(body, "steps", 2, MAX_PATH_STEPS, default=9)
        out: dict[str, Any] = {"a": a, "b": b, "steps": steps}
        for name, path in (("linear", lerp), ("spherical", slerp)):
            z = path(self.codes[a], self.codes[b], steps)  # (S, D)
            out[name] = [pixels(img) for img in self.decode(z)]
            out[f"{name}_points"] = ((z - self.center) @ self.basis.T).tolist()
        return out

    # ------------------------------------------------------------------ export

    def grid_images(self) -> torch.Tensor:
        """Decodes (G², 1, 28, 28) of a G×G grid over the map, G = STATIC_GRID, row-major with
        row 0 at the top (largest y): the exported page's hover and its PNG sheet."""
        (x0, y0), (x1, y1) = self.extent.tolist()
        gy, gx = torch.meshgrid(
            torch.linspace(y1, y0, STATIC_GRID), torch.linspace(x0, x1, STATIC_GRID), indexing="ij"
        )
        p = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)  # (G², 2)
        return torch.cat([self.decode(self.center + part @ self.basis) for part in p.split(100)])

    def static(self) -> dict[str, Any]:
        decodes = [pixels(im) for im in self.grid_images()]
        return {**self.info(), "grid": STATIC_GRID, "decodes": decodes}
