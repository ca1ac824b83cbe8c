"""The VQ-VAE page: a test image, its grid of code indices, and the decode of an edited grid.

The codebook view shows, for every code k, what it decodes to *in context*: a
grid of the background code with k in the middle cell (a grid filled with k
alone is a texture no image contains), and how often k is used over the page's
test images. The background code is the one most used in the grid's corners,
which are empty in nearly every 28×28 image; it also fills the positions a prior
has not drawn yet on the sampling page.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.loader import to_float
from .pages import ModelPage, field_int_list, pixels

__all__ = ["VQPage"]

STATIC_IMAGES = 24  # test images (with their grids) in the exported page


class VQPage(ModelPage):
    """A ``vqvae`` run: ``images`` (N, 28, 28) uint8 test images, ``labels`` (N,)."""

    kind = "vq"
    get_actions = frozenset({"info", "codebook"})

    def prepare(self) -> None:
        model, images = self.model, self.images
        self.num_codes = int(model.num_codes)
        self.grid = tuple(model.grid)  # (H, W)
        with torch.no_grad():
            self.codes = torch.cat(
                [model.encode_indices(to_float(part)) for part in images.split(500)]
            ).long()  # (N, H, W)
        self.usage = torch.bincount(self.codes.flatten(), minlength=self.num_codes)  # (K,)
        corners = self.codes[:, [0, 0, -1, -1], [0, -1, 0, -1]].flatten()
        self.background = int(torch.bincount(corners, minlength=self.num_codes).argmax())
        self._codebook: list[str] | None = None

    @property
    def length(self) -> int:
        return self.grid[0] * self.grid[1]

    @torch.no_grad()
    def decode_grids(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, H, W) long code grids → (B, 1, 28, 28) images in [0, 1]."""
        return self.model.decode_indices(codes.long()).float().clamp(0, 1)

    def codebook_images(self) -> torch.Tensor:
        """(K, 1, 28, 28): each code alone in the middle of a background grid, decoded."""
        h, w = self.grid
        grids = torch.full((self.num_codes, h, w), self.background, dtype=torch.long)
        grids[:, h // 2, w // 2] = torch.arange(self.num_codes)
        return torch.cat([self.decode_grids(part) for part in grids.split(256)])

    # ------------------------------------------------------------------ actions

    def info(self) -> dict[str, Any]:
        return {
            **self.images_info(),
            "num_codes": self.num_codes,
            "grid": list(self.grid),
            "background": self.background,
            "usage": self.usage.tolist(),
        }

    def act_codebook(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._codebook is None:  # computed once, on first use: K decodes
            self._codebook = [pixels(im) for im in self.codebook_images()]
        return {"images": self._codebook, "usage": self.usage.tolist()}

    def _image(self, i: int) -> dict[str, Any]:
        codes = self.codes[i]
        return {
            "index": i,
            "label": int(self.labels[i]),
            "image": pixels(self.images[i]),
            "codes": codes.flatten().tolist(),
            "recon": pixels(self.decode_grids(codes[None])[0]),
        }

    def act_image(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._image(self.field_index(body))

    def act_decode(self, body: dict[str, Any]) -> dict[str, Any]:
        flat = field_int_list(body, "codes", self.length, 0, self.num_codes - 1)
        grid = torch.tensor(flat, dtype=torch.long).view(1, *self.grid)
        return {"image": pixels(self.decode_grids(grid)[0])}

    # ------------------------------------------------------------------ export

    def static(self) -> dict[str, Any]:
        n = min(STATIC_IMAGES, len(self.labels))
        return {
            **self.info(),
            "codebook": self.act_codebook({})["images"],
            "images": [self._image(i) for i in range(n)],
        }
