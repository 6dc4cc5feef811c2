"""Logistic regression by batch gradient descent, in pure Python."""
import math


def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class Standardizer:
    def __init__(self, rows):
        n = len(rows)
        cols = list(zip(*rows))
        self.mean = [math.fsum(c) / n for c in cols]
        self.std = [math.sqrt(math.fsum((x - m) ** 2 for x in c) / n) or 1.0
                    for c, m in zip(cols, self.mean)]

    def __call__(self, row):
        return [(x - m) / s for x, m, s in zip(row, self.mean, self.std)]


class LogisticRegression:
    def __init__(self, epochs=400, rate=0.5, l2=0.001):
        self.epochs, self.rate, self.l2 = epochs, rate, l2
        self.weights, self.bias, self.scale = None, 0.0, None

    def fit(self, rows, labels):
        self.scale = Standardizer(rows)
        xs = [self.scale(r) for r in rows]
        n, d = len(xs), len(xs[0])
        w, b = [0.0] * d, 0.0
        for _ in range(self.epochs):
            gw, gb = [0.0] * d, 0.0
            for x, y in zip(xs, labels):
                err = sigmoid(b + math.fsum(wi * xi for wi, xi in zip(w, x))) - y
                gb += err
                for j in range(d):
                    gw[j] += err * x[j]
            w = [wj - self.rate * (g / n + self.l2 * wj) for wj, g in zip(w, gw)]
            b -= self.rate * gb / n
        self.weights, self.bias = w, b
        return self

    def predict_proba(self, row):
        x = self.scale(row)
        return sigmoid(self.bias + math.fsum(wi * xi for wi, xi in zip(self.weights, x)))

    def accuracy(self, rows, labels):
        ok = sum(1 for r, y in zip(rows, labels) if (self.predict_proba(r) >= 0.5) == (y == 1))
        return ok / len(rows)
