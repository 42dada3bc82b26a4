import numpy as np
import pytest

from lib.images import hog_features
from lib.methods.hog_lda import (
    background_statistics,
    fit_full_covariance_hog_lda,
    lda_whitening,
    random_windows,
    stationary_hog_lda,
    stationary_statistics,
    window_covariance,
)

# A stationary Gaussian process on a grid of C-dim cells: x_p = mu + sum_a M_a e_{p-a}, e white N(0, I).
# Its covariance is known exactly: Sigma(d) = E[(x_p - mu)(x_{p+d} - mu)^T] = sum_a M_a M_{a+d}^T.
C = 2
KERNEL = {(0, 0): np.array([[1.0, 0.3], [0.0, 0.8]]), (0, 1): np.array([[0.5, 0.0], [0.2, -0.4]]),
          (1, 0): np.array([[-0.3, 0.6], [0.1, 0.5]])}  # fmt: skip
MU = np.array([2.0, -1.0])


def true_sigma(dy: int, dx: int) -> np.ndarray:
    return sum((M @ KERNEL[(a[0] + dy, a[1] + dx)].T for a, M in KERNEL.items() if (a[0] + dy, a[1] + dx) in KERNEL),
               np.zeros((C, C)))  # fmt: skip


def sample_process(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    e = rng.normal(size=(n, h + 1, w + 1, C))  # e[:, y + 1, x + 1] is the noise of cell (y, x)
    x = np.broadcast_to(MU, (n, h, w, C)).copy()
    for (ay, ax), M in KERNEL.items():
        x += e[:, 1 - ay : 1 - ay + h, 1 - ax : 1 - ax + w] @ M.T
    return x


def test_stationary_statistics_equal_the_brute_force_average_over_cell_pairs():
    rng = np.random.default_rng(0)
    maps = [rng.normal(size=(3, 5, 6, 4)), rng.normal(size=(2, 4, 4, 4)) + 1]
    mean, sigma = stationary_statistics(maps, (2, 3))
    mu = np.concatenate([m.reshape(-1, 4) for m in maps]).mean(0)
    np.testing.assert_allclose(mean, mu)
    for dy in range(-2, 3):
        for dx in range(-3, 4):
            total, n = np.zeros((4, 4)), 0
            for m in maps:
                _, H, W, _ = m.shape
                for y in range(max(0, -dy), min(H, H - dy)):
                    for x in range(max(0, -dx), min(W, W - dx)):
                        total += (m[:, y, x] - mu).T @ (m[:, y + dy, x + dx] - mu)
                        n += len(m)
            np.testing.assert_allclose(sigma[2 + dy, 3 + dx], total / n, atol=1e-12)
    np.testing.assert_allclose(sigma[2 + 1, 3 - 2], sigma[2 - 1, 3 + 2].T, atol=1e-12)  # Sigma(-d) = Sigma(d)^T


def test_stationary_statistics_recover_a_known_covariance():
    rng = np.random.default_rng(1)
    maps = [sample_process(rng, 300, 12, 12), sample_process(rng, 300, 8, 10)]  # two sizes, one process
    mean, sigma = stationary_statistics(maps, (2, 2))
    np.testing.assert_allclose(mean, MU, atol=0.03)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            np.testing.assert_allclose(sigma[2 + dy, 2 + dx], true_sigma(dy, dx), atol=0.04, err_msg=f"d={dy, dx}")
    assert np.abs(sigma[4, 4]).max() < 0.04  # offset (2, 2): no kernel overlap, true covariance 0


def test_window_covariance_is_the_exact_covariance_of_flattened_windows():
    # the window (h x w cells, row-major, each cell's C values together) is a linear map A of the noise
    h, w = 2, 3
    cells = [(y, x) for y in range(h) for x in range(w)]
    noise = [(y, x) for y in range(-1, h) for x in range(-1, w)]
    A = np.zeros((h * w * C, len(noise) * C))
    for i, (y, x) in enumerate(cells):
        for (ay, ax), M in KERNEL.items():
            j = noise.index((y - ay, x - ax))
            A[i * C : (i + 1) * C, j * C : (j + 1) * C] = M
    sigma = np.stack([np.stack([true_sigma(dy, dx) for dx in range(-2, 3)]) for dy in range(-1, 2)])  # radius (1, 2)
    np.testing.assert_allclose(window_covariance(sigma, (h, w)), A @ A.T, atol=1e-12)
    with pytest.raises(ValueError, match="radius"):
        window_covariance(sigma, (3, 3))


def test_lda_whitening_clips_negative_eigenvalues_and_adds_a_relative_ridge():
    cov = np.diag([2.0, -1.0])  # clipped to diag(2, 0); ridge 1 x mean diagonal 0.5 -> diag(2.5, 0.5)
    np.testing.assert_allclose(lda_whitening(cov, 1.0), np.diag([2.5**-0.5, 0.5**-0.5]), atol=1e-12)
    rng = np.random.default_rng(0)
    B = rng.normal(size=(6, 6))
    cov = B @ B.T
    W = lda_whitening(cov, 0.1)
    np.testing.assert_allclose(W @ (cov + 0.1 * np.trace(cov) / 6 * np.eye(6)) @ W, np.eye(6), atol=1e-9)
    with pytest.raises(ValueError, match="ridge"):
        lda_whitening(cov, 0.0)


def test_stationary_hog_lda_whitens_the_assembled_window_covariance():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(6, 40, 40, 3), dtype=np.uint8)
    mean, sigma = background_statistics(frames, sizes=(32, 48), window=(3, 3))  # 32 px crops: 3 x 3 blocks
    assert mean.shape == (36,) and sigma.shape == (5, 5, 36, 36)
    lda = stationary_hog_lda(mean, sigma, (3, 3), ridge=0.1)
    assert lda.mean.shape == (324,) and lda.whitening.shape == (324, 324)
    np.testing.assert_allclose(lda.mean[:36], lda.mean[36:72])  # one mean cell, tiled over the window
    np.testing.assert_allclose(lda.whitening, lda.whitening.T, atol=1e-10)
    cov = window_covariance(sigma, (3, 3))
    evals, evecs = np.linalg.eigh(cov)
    cov_ridge = (evecs * np.maximum(evals, 0)) @ evecs.T + 0.1 * np.trace(cov) / 324 * np.eye(324)
    np.testing.assert_allclose(lda.whitening @ cov_ridge @ lda.whitening, np.eye(324), atol=1e-6)
    crops = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    z = lda.transform(crops)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(z, lda.apply(hog_features(crops)), atol=1e-6)
    with pytest.raises(ValueError, match="blocks"):
        background_statistics(frames, sizes=(24,), window=(3, 3))


def test_full_covariance_hog_lda_whitening_is_inverse_sqrt_of_window_covariance():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(4, 48, 48, 3), dtype=np.uint8)
    windows = random_windows(frames, 32, 60, rng)
    assert windows.shape == (60, 32, 32, 3) and windows.dtype == np.uint8
    lda = fit_full_covariance_hog_lda(windows, ridge=0.1)
    h = hog_features(windows).astype(np.float64)
    cov = np.cov(h, rowvar=False)
    evals = np.linalg.eigvalsh(cov)
    assert evals.min() > -1e-10  # a sample covariance: nothing to clip
    cov += 0.1 * np.trace(cov) / len(cov) * np.eye(len(cov))
    np.testing.assert_allclose(lda.whitening @ cov @ lda.whitening, np.eye(len(cov)), atol=1e-6)
    np.testing.assert_allclose(lda.mean, h.mean(0), atol=1e-12)
