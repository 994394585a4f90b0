"""MNIST-1D generation, bit for bit the ``mnist1d`` package's ``make_dataset``, several times faster.

The package builds each signal with four ``scipy.interpolate.interp1d`` objects (two of them
interpolate the same time axis for every sample, and are thrown away) and one
``gaussian_filter`` call: ~0.7 ms of Python per sample, 36 s for the 50 000 samples of
``task=mnist1d_large`` on this machine. For 1-D float64 data ``interp1d(kind="linear")`` calls
``np.interp`` itself, so calling ``np.interp`` directly gives the same bits. Here every random
number is drawn in the package's order (one sample after another: pad, scale, translation, the
correlated noise, the i.i.d. noise, shear), then the arithmetic runs on all samples at once where it
is element-wise (the same IEEE operations on each element, so the same bits), per sample where it
is not (``np.interp``). ``tests/data/test_mnist1d_generate.py`` checks equality with the package.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
from scipy.ndimage import gaussian_filter1d


def make_dataset(args) -> Dict[str, np.ndarray]:
    """The package's ``make_dataset(args)`` arrays: x (N_train, L), y, x_test, y_test, t.

    Args:
        args: an object with the package's dataset attributes (``num_samples``, ``train_split``,
            ``template_len``, ``padding``, ``scale_coeff``, ``max_translation``,
            ``corr_noise_scale``, ``iid_noise_scale``, ``shear_scale``, ``shuffle_seq``,
            ``final_seq_length``, ``seed``), e.g. ``mnist1d.utils.ObjectView``.

    Seeds Python's and numpy's global generators with ``args.seed``, as the package does.
    """
    import random

    from mnist1d.data import get_templates

    templates = get_templates()
    random.seed(args.seed)
    np.random.seed(args.seed)
    eps = 1e-8
    low, high = args.padding
    length = args.template_len + high  # the dilated length: 72 with the defaults
    labels = templates["y"]
    per_class = args.num_samples // len(labels)
    n = per_class * len(labels)

    # -- the random draws, in the package's order (transform.py) -----------------------------
    pads = np.empty(n, dtype=np.int64)
    scales, shears = np.empty(n), np.empty(n)
    shifts = np.empty(n, dtype=np.int64)
    corr_noise, iid_noise = np.empty((n, length)), np.empty((n, length))
    for i in range(n):
        pads[i] = low + int(np.random.rand() * (high - low + 1))
        scales[i] = 1 + args.scale_coeff * (np.random.rand() - 0.5)
        shifts[i] = np.random.choice(args.max_translation)
        corr_noise[i] = args.corr_noise_scale * np.random.randn(length)
        iid_noise[i] = args.iid_noise_scale * np.random.randn(length)
        shears[i] = args.shear_scale * (np.random.rand() - 0.5)

    # -- pad with zeros, then dilate to ``length`` (per sample: the padded lengths differ) ------
    class_of = np.repeat(np.arange(len(labels)), per_class)
    dilated = np.empty((n, length))
    grid = np.linspace(0, 1, length)
    for i in range(n):
        padded = np.concatenate([templates["x"][class_of[i]] + eps, np.zeros(pads[i])])
        dilated[i] = np.interp(grid, np.linspace(0, 1, len(padded)), padded)
    dilated *= scales[:, None]
    # translate: the package's concatenate([x[-k:], x[:-k]]), which is x itself for k = 0
    columns = (np.arange(length)[None, :] - shifts[:, None]) % length
    moved = np.take_along_axis(dilated, columns, axis=1)
    # the package's gaussian_filter(noise, 2) on a 1-D signal is this filter along each row
    corr = gaussian_filter1d(corr_noise, 2, axis=-1)
    mask = moved != 0
    noisy = mask * moved + (1 - mask) * corr
    noisy = noisy + iid_noise
    sheared = noisy - shears[:, None] * np.linspace(-0.5, 0.5, length)[None, :]
    final = np.linspace(0, 1, args.final_seq_length)
    xs = np.stack([np.interp(final, grid, row) for row in sheared])
    ys = labels[class_of]
    # the package interpolates the time axis to the final length (the same for every sample)
    new_t = np.interp(final, np.linspace(0, 1, length),
                      np.interp(grid, np.linspace(0, 1, len(templates["t"])), templates["t"]))

    shuffle = np.random.permutation(n)
    xs, ys = xs[shuffle], ys[shuffle]
    if args.shuffle_seq:
        xs = xs[..., np.random.permutation(args.final_seq_length)]
    new_t = new_t / xs.std()
    xs = (xs - xs.mean()) / xs.std()
    split = int(n * args.train_split)
    return {"x": xs[:split], "x_test": xs[split:], "y": ys[:split], "y_test": ys[split:],
            "t": new_t, "templates": templates}
