"""The lecture's 3-D points on a plane (aegen.plane)."""

from aegen.plane import run_plane_demo


def test_linear_ae_reaches_the_pca_optimum_on_the_plane():
    result = run_plane_demo(None, epochs=200, seed=0)
    # It can reach but not beat PCA (beyond float noise): the optimum of a linear AE.
    assert result["ratio"] < 1.02
    assert result["ratio"] > 0.999
