"""Classical two-modality baselines on handwritten digits with textual hints (Chapter 1).

Each modality gets its own logistic regression. *Early* fusion trains one classifier on the
concatenated features; *late* fusion multiplies the two posteriors and divides by the prior,
``p(y | x_img, x_txt) ∝ p(y | x_img) p(y | x_txt) / p(y)``, which is exact when the two modalities are
conditionally independent given the class (Chapter 1, Eq. late-fusion).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression


def thumbnail(images: np.ndarray, block: int = 4) -> np.ndarray:
    """uint8 pictures ``(N, H, W, C)`` → float32 ``(N, H/block · W/block · C)``: the mean of each
    ``block × block`` square, scaled to [0, 1] (Chapter 2; Chapters 4 and 6 reuse it)."""
    n, height, width, channels = images.shape
    if height % block or width % block:
        raise ValueError(f"the picture's sides ({height}×{width}) must be multiples of block={block}")
    squares = images.astype(np.float32).reshape(n, height // block, block, width // block, block, channels)
    return squares.mean(axis=(2, 4)).reshape(n, -1) / 255


def image_features(images: np.ndarray) -> np.ndarray:
    """Flatten ``(N, 8, 8)`` images in [0, 1] into ``(N, 64)`` feature vectors (Chapter 1)."""
    images = np.asarray(images, dtype=np.float64)
    return images.reshape(len(images), -1)


def late_fusion(*probas: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Combine per-modality posteriors ``p(y | x_m)`` under conditional independence (Chapter 1).

    ``log p(y | x_1..x_M) = Σ_m log p(y | x_m) − (M − 1) log p(y) + const``, normalised over classes.
    """
    eps = 1e-12
    logits = sum(np.log(p + eps) for p in probas) - (len(probas) - 1) * np.log(prior + eps)
    logits = logits - logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum for numerical stability (Chapter 1)."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_regression_grad(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of the mean cross-entropy of ``softmax(x w^T + c)`` w.r.t. ``w`` and ``c`` (Chapter 1).

    ``(P - T)^T X / N`` and the column mean of ``P - T``, with ``T`` the one-hot targets (Eq. softmax-grad).
    """
    p = softmax(x @ w.T + c)
    p[np.arange(len(y)), y] -= 1.0
    return p.T @ x / len(y), p.mean(axis=0)


@dataclass
class SoftmaxRegression:
    """Multinomial logistic regression by full-batch gradient descent, from scratch (Chapter 1)."""

    l2: float = 1e-3
    lr: float = 0.5
    epochs: int = 1000
    w: np.ndarray | None = None
    c: np.ndarray | None = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> SoftmaxRegression:
        classes = int(y.max()) + 1
        self.w = np.zeros((classes, x.shape[1]))
        self.c = np.zeros(classes)
        for _ in range(self.epochs):
            grad_w, grad_c = softmax_regression_grad(x, y, self.w, self.c)
            self.w -= self.lr * (grad_w + self.l2 * self.w)
            self.c -= self.lr * grad_c
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(x @ self.w.T + self.c)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1)


@dataclass
class DigitsWithHints:
    """Image-only, hint-only, early-fusion and late-fusion classifiers for digits (Chapter 1)."""

    c: float = 1.0
    vectorizer: CountVectorizer = field(default_factory=lambda: CountVectorizer(ngram_range=(1, 2)))
    image_model: LogisticRegression | None = None
    hint_model: LogisticRegression | None = None
    early_model: LogisticRegression | None = None
    prior: np.ndarray | None = None

    def _text(self, hints: list[str]) -> np.ndarray:
        return self.vectorizer.transform(hints).toarray().astype(np.float64)

    def fit(self, images: np.ndarray, hints: list[str], labels: np.ndarray) -> DigitsWithHints:
        """Fit the three classifiers on the same training set."""
        x_img = image_features(images)
        x_txt = self.vectorizer.fit_transform(hints).toarray().astype(np.float64)

        def model() -> LogisticRegression:
            return LogisticRegression(C=self.c, max_iter=1000, tol=1e-3)

        self.image_model = model().fit(x_img, labels)
        self.hint_model = model().fit(x_txt, labels)
        self.early_model = model().fit(np.hstack([x_img, x_txt]), labels)
        self.prior = np.bincount(labels, minlength=10) / len(labels)
        return self

    def proba_image(self, images: np.ndarray) -> np.ndarray:
        return self.image_model.predict_proba(image_features(images))

    def proba_hint(self, hints: list[str]) -> np.ndarray:
        return self.hint_model.predict_proba(self._text(hints))

    def proba_early(self, images: np.ndarray, hints: list[str]) -> np.ndarray:
        return self.early_model.predict_proba(np.hstack([image_features(images), self._text(hints)]))

    def proba_late(self, images: np.ndarray, hints: list[str]) -> np.ndarray:
        return late_fusion(self.proba_image(images), self.proba_hint(hints), prior=self.prior)

    def accuracies(self, images: np.ndarray, hints: list[str], labels: np.ndarray) -> dict[str, float]:
        """Test accuracy of each classifier: ``image``, ``hint``, ``early``, ``late``."""
        probas = {
            "image": self.proba_image(images),
            "hint": self.proba_hint(hints),
            "early": self.proba_early(images, hints),
            "late": self.proba_late(images, hints),
        }
        return {name: float((p.argmax(1) == labels).mean()) for name, p in probas.items()}
