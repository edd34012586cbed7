"""A reference classifier of the 8x8 digits, trained with minigen, to score generated digits.

Scores of a set of samples (the digits analogue of Inception-based metrics):

- ``class_coverage``: how many of the 10 classes the classifier assigns to at least one
  sample (1% of the samples, at least one, must fall in a class for it to count);
- ``mean_confidence``: the mean of the largest softmax probability (high for clear digits);
- ``frechet_distance``: the Fréchet distance between Gaussians fitted to the classifier's
  penultimate-layer features of the samples and of the real digits (as FID does with
  Inception features, Heusel et al. 2017).

The classifier is an MLP on the flattened images, trained on a fixed split of the 1797
digits; ``accuracy`` on the held-out 297 is reported with it (>= 0.95 required).
"""
import numpy as np

from minigen import data as datasets
from minigen import functional as F
from minigen import backend, metrics, nn, optim
from minigen.tensor import Tensor, no_grad

HELD_OUT = 297


class DigitsClassifier:
    """``model`` (an :class:`nn.MLP` 64 -> hidden -> 10) with its held-out ``accuracy``."""

    def __init__(self, model, accuracy, real_images):
        self.model, self.accuracy = model, accuracy
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
        of images (n, 1, 8, 8) in [-1, 1]."""
        images = np.asarray(images, dtype=np.float32)
        if images.shape[1:] != (1, 8, 8):
            raise ValueError(
                "DigitsClassifier.score: expected images (n, 1, 8, 8), got "
                f"{images.shape}"
            )
        p = self.probabilities(images)
        counts = np.bincount(p.argmax(axis=1), minlength=10)
        threshold = max(1, int(0.01 * len(images)))
        return {
            "class_coverage": int(np.count_nonzero(counts >= threshold)),
            "mean_confidence": float(p.max(axis=1).mean()),
            "class_counts": counts.tolist(),
            "frechet_distance": metrics.frechet_distance(self.features(images), self.real_features),
        }


def train_digits_classifier(steps=1500, batch_size=128, lr=1e-3, hidden=(128, 128), seed=0):
    """Train the reference classifier on the first 1500 digits (in the fixed order of
    ``data.digits(seed=0)``) and measure its accuracy on the other 297."""
    images, labels = datasets.digits(seed=0)
    x = images.reshape(len(images), -1)
    x_train, y_train = x[:-HELD_OUT], labels[:-HELD_OUT]
    saved = backend.get_rng_state()  # the initialisation must not shift the caller's stream
    backend.manual_seed(seed)
    model = nn.MLP(64, 10, hidden=hidden, activation="relu")
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
    predicted = classifier.probabilities(images[-HELD_OUT:]).argmax(axis=1)
    classifier.accuracy = float(np.mean(predicted == labels[-HELD_OUT:]))
    return classifier
