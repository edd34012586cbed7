"""Quality numbers for samples of a known dataset, for both model families (the demo, the
CLI, the coverage benchmark and the tests call :func:`evaluate_samples` explicitly).

Structure, not only distance: for sets drawn from a known curve, the precision and
coverage of :func:`minigen.metrics.curve_quality` against the curve itself; for the PacGAN
mixtures, :func:`minigen.metrics.mode_coverage`; for any vectors, the energy distance to
fresh (or training) data; for the 8x8 digits and MNIST-5k, the scores of their reference
classifiers (:class:`DigitsClassifier`, :func:`reference_classifier`) below.

:func:`image_quality` compares generated images with a held-out set of real images of the same
size (``bench.compare``): Fréchet distance and k-NN precision/recall in the classifier's feature
space (digits, MNIST-5k) or in pixel space (any other images), and the classifier's class histogram.
"""
import functools

import numpy as np

from minigen import backend, metrics, nn, optim, support
from minigen import data as datasets
from minigen import functional as F
from minigen.tensor import Tensor, no_grad

CURVES = {"s_curve": datasets.S_CURVE, "swiss_roll": datasets.SWISS_ROLL, "moons": datasets.MOONS}
MIXTURES = {"ring8": datasets.RING8, "grid25": datasets.GRID25}
CURVE_NOISE = 0.05
"""The noise std of the generated curves (``minigen.data`` default)."""


def evaluate_samples(samples, data_name=None, reference=None, seed=0):
    """A flat dict of quality numbers for ``samples``: vectors (n, d), or digits (n, 1, 8, 8)
    or (n, 1, 28, 28) (``data_name`` "digits" or "mnist5k").

    ``data_name`` selects the protocol of a known set; otherwise (or in addition) the energy
    distance to ``reference`` (e.g. the training data) is reported, and for known sets the
    energy distance to a fresh draw of the same size (``energy_distance``)."""
    samples = np.asarray(samples, dtype=np.float64)
    out = {}
    if data_name in CURVES:
        q = metrics.curve_quality(samples, *CURVES[data_name].polyline(), noise_std=CURVE_NOISE)
        out.update(precision=q["precision"], coverage=q["coverage"], reverse_kl=q["reverse_kl"])
    elif data_name in MIXTURES:
        mixture = MIXTURES[data_name]
        q = metrics.mode_coverage(samples, mixture.modes, mixture.std)
        out.update(modes_covered=q["modes_covered"], high_quality=q["high_quality"],
                   reverse_kl=q["reverse_kl"])
    if data_name in CURVES or data_name in MIXTURES:
        fresh = datasets.load_dataset(data_name, n=max(len(samples), 2000), seed=seed + 12345)
        out["energy_distance"] = metrics.energy_distance(samples, fresh)
    elif reference is not None and np.ndim(reference) == 2:
        out["energy_distance"] = metrics.energy_distance(samples, reference)
    if data_name in CLASSIFIED and samples.shape[1:] == CLASSIFIED[data_name]["shape"]:
        classifier = reference_classifier(data_name)
        scores = classifier.score(samples)
        del scores["class_counts"]
        out.update(scores, classifier_accuracy=classifier.accuracy)
    return out


# --- the reference classifiers of the two digit sets ---------------------------------------
# A reference classifier per image set of ``minigen.data.IMAGE_SETS``, trained with minigen, to
# score generated digits.
#
# Scores of a set of samples (the digits analogue of Inception-based metrics):
#
# - ``class_coverage``: how many of the 10 classes the classifier assigns to at least one
#   sample (1% of the samples, at least one, must fall in a class for it to count);
# - ``mean_confidence``: the mean of the largest softmax probability (high for clear digits);
# - ``frechet_distance``: the Fréchet distance between Gaussians fitted to the classifier's
#   penultimate-layer features of the samples and of the real digits (as FID does with
#   Inception features, Heusel et al. 2017).
#
# The classifier is an MLP on the flattened images, trained on a fixed split of the set (the
# order of ``data.digits(seed=0)`` or ``data.mnist5k(seed=0)``, the last ``held_out`` images
# kept out); ``accuracy`` on the held-out images is reported with it (docs/results.md states
# both; the tests require >= 0.95 on the 8x8 digits and >= 0.90 on MNIST-5k).

CLASSIFIED = {
    "digits": dict(load=datasets.digits, shape=(1, 8, 8), held_out=297, hidden=(128, 128)),
    "mnist5k": dict(load=datasets.mnist5k, shape=(1, 28, 28), held_out=500, hidden=(256, 128)),
}
"""The image sets with a reference classifier: the loader, the image shape, the held-out
count of the fixed split and the MLP's hidden sizes."""

@functools.lru_cache(maxsize=None)
def reference_classifier(name):
    """The reference classifier of the image set ``name`` (a key of ``CLASSIFIED``), trained
    once per process and kept."""
    if name not in CLASSIFIED:
        raise ValueError(f"reference_classifier: no classifier for {name!r}; one of "
                         f"{sorted(CLASSIFIED)}")
    return train_classifier(name)


def digits_classifier():
    """The reference classifier of the 8x8 digits (:func:`reference_classifier`)."""
    return reference_classifier("digits")


def mnist5k_classifier():
    """The reference classifier of MNIST-5k (:func:`reference_classifier`; needs the
    ``data`` extra, as ``minigen.data.mnist5k``)."""
    return reference_classifier("mnist5k")


class DigitsClassifier:
    """``model`` (an :class:`nn.MLP` pixels -> hidden -> 10) with its held-out ``accuracy``,
    for images of ``real_images``' shape (the 8x8 digits or MNIST-5k's 28x28)."""

    def __init__(self, model, accuracy, real_images):
        self.model, self.accuracy = model, accuracy
        self.image_shape = tuple(np.shape(real_images)[1:])
        self.real_features = self.features(real_images)

    def _forward(self, images):
        x = Tensor(np.asarray(images, dtype=np.float32).reshape(len(images), -1))
        with no_grad():
            for layer in self.model.layers[:-1]:
                x = self.model.act(layer(x))
            return x.data, self.model.layers[-1](x).data

    def features(self, images):
        return self._forward(images)[0]

    def probabilities(self, images):
        logits = self._forward(images)[1].astype(np.float64)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    def score(self, images):
        """``class_coverage``, ``mean_confidence``, ``class_counts`` and ``frechet_distance``
        of images (n, *image_shape) in [-1, 1].

        The Fréchet distance is against the whole set (all 1797 digits, or the 5000 of
        MNIST-5k), the set the demo models train on: it rewards memorising them, and it grows
        as n shrinks (a finite sample's Fréchet distance is biased upwards), so it is a quick
        check of one run, comparable only between sample sets of the same n. To compare
        models, use :func:`image_quality` against held-out images with a real-versus-real
        baseline of the same n (``bench.compare``)."""
        images = np.asarray(images, dtype=np.float32)
        if images.shape[1:] != self.image_shape:
            shape = ", ".join(map(str, self.image_shape))
            raise ValueError(f"DigitsClassifier.score: expected images (n, {shape}), got "
                             f"{images.shape}")
        p = self.probabilities(images)
        counts = np.bincount(p.argmax(axis=1), minlength=10)
        return {
            "class_coverage": _class_coverage(counts),
            "mean_confidence": float(p.max(axis=1).mean()),
            "class_counts": counts.tolist(),
            "frechet_distance": metrics.frechet_distance(self.features(images), self.real_features),
        }


def _class_coverage(counts):
    """Classes holding at least 1% of the samples (at least one sample)."""
    return int(np.count_nonzero(counts >= max(1, int(0.01 * counts.sum()))))


def train_classifier(name, steps=1500, batch_size=128, lr=1e-3, hidden=None, seed=0):
    """Train the reference classifier of the image set ``name`` (``CLASSIFIED``) on all but
    the last ``held_out`` images of its fixed order (the set's loader with seed 0) and measure
    its accuracy on those. ``hidden`` defaults to the set's."""
    recipe = CLASSIFIED[name]
    images, labels = recipe["load"](seed=0)
    held_out = recipe["held_out"]
    x = images.reshape(len(images), -1)
    x_train, y_train = x[:-held_out], labels[:-held_out]
    saved = backend.get_rng_state()  # the initialisation must not shift the caller's stream
    backend.manual_seed(seed)
    model = nn.MLP(x.shape[1], 10, hidden=hidden or recipe["hidden"], activation="relu")
    backend.set_rng_state(saved)
    opt = optim.Adam(model, lr=lr)
    batches = datasets.batches((x_train, y_train), batch_size, seed=seed)
    for step in range(steps):
        xb, yb = next(batches)
        opt.lr = optim.warmup_cosine(step, lr, 50, steps)
        opt.zero_grad()
        loss = F.cross_entropy(model(Tensor(xb)), yb)
        loss.backward()
        opt.step()
    model.eval()
    classifier = DigitsClassifier(model, 0.0, images)
    predicted = classifier.probabilities(images[-held_out:]).argmax(axis=1)
    classifier.accuracy = float(np.mean(predicted == labels[-held_out:]))
    return classifier


def train_digits_classifier(steps=1500, batch_size=128, lr=1e-3, hidden=(128, 128), seed=0):
    """:func:`train_classifier` on the 8x8 digits: the first 1500 (in the fixed order of
    ``data.digits(seed=0)``) for training, the other 297 for the accuracy."""
    return train_classifier("digits", steps, batch_size, lr, hidden, seed)


# --- generated images against held-out real images -----------------------------------------


def feature_quality(features, reference, k=support.K):
    """Fréchet distance (:func:`minigen.metrics.frechet_distance`) and improved precision and
    recall (:func:`minigen.support.knn_precision_recall`, k-NN balls) of ``features`` (n, d)
    against ``reference`` (n, d) features of real data. Both statistics depend on the sample
    size (the Fréchet distance of two finite samples of one law is biased upwards, the balls
    shrink as n grows), so the two sets must have the same n; compare a model's numbers with
    those of a real set of that n."""
    features, reference = metrics.sample_pair(features, reference, "feature_quality", min_n=k + 1)
    if len(features) != len(reference):
        raise ValueError(f"feature_quality: the sets must have the same size (the statistics "
                         f"depend on n), got {len(features)} and {len(reference)}")
    return {"frechet_distance": metrics.frechet_distance(features, reference),
            **support.knn_precision_recall(reference, features, k, max_samples=None)}


def image_quality(images, reference, classifier=None, k=support.K):
    """Quality numbers of generated ``images`` against held-out real ``reference`` images, both
    (n, C, H, W) of the same n and in the same units.

    With a ``classifier`` (the :class:`DigitsClassifier`, images in [-1, 1]): its class
    histogram (``class_coverage``; ``class_tv``, the total variation distance between the
    histograms of the two sets' predicted classes, 0 for equal shares and 1 for disjoint
    classes; ``mean_confidence``) and :func:`feature_quality` in its penultimate-layer features
    (``feature_space`` "classifier"). Without one (images no classifier was trained on),
    :func:`feature_quality` on the flattened pixels (``feature_space`` "pixels"): the class
    numbers have no meaning there and are left out."""
    images, reference = np.asarray(images, np.float32), np.asarray(reference, np.float32)
    if images.ndim != 4 or images.shape[1:] != reference.shape[1:] or reference.ndim != 4:
        raise ValueError(f"image_quality: expected two sets of images (n, C, H, W) of one "
                         f"shape, got {images.shape} and {reference.shape}")
    if classifier is not None and images.shape[1:] != classifier.image_shape:
        raise ValueError(f"image_quality: the classifier takes images (n, "
                         f"{', '.join(map(str, classifier.image_shape))}), got {images.shape}")
    if classifier is None:
        out = feature_quality(images.reshape(len(images), -1),
                              reference.reshape(len(reference), -1), k)
        return {**out, "feature_space": "pixels"}
    p, q = classifier.probabilities(images), classifier.probabilities(reference)
    counts = np.bincount(p.argmax(axis=1), minlength=p.shape[1])
    real_counts = np.bincount(q.argmax(axis=1), minlength=q.shape[1])
    return {"class_coverage": _class_coverage(counts),
            "class_tv": float(0.5 * np.abs(counts / counts.sum()
                                           - real_counts / real_counts.sum()).sum()),
            "mean_confidence": float(p.max(axis=1).mean()),
            **feature_quality(classifier.features(images), classifier.features(reference), k),
            "feature_space": "classifier"}
