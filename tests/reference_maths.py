"""Independent float64 reference implementations, written with NumPy loops, to test fkdlib against.

Nothing here imports fkdlib: a bug in the library cannot leak into its own reference.
"""
import numpy as np


def cosine_kernel(h):
    h = np.asarray(h, dtype=np.float64).reshape(len(h), -1)
    B = len(h)
    K = np.empty((B, B))
    for i in range(B):
        for j in range(B):
            K[i, j] = h[i] @ h[j] / np.sqrt((h[i] @ h[i]) * (h[j] @ h[j]))
    return K


def fkd(h_s, h_ts, normalize=True, include_diagonal=False):
    kern = cosine_kernel if normalize else (lambda h: np.asarray(h, np.float64) @ np.asarray(h, np.float64).T)
    K_s = kern(h_s)
    K_t = sum(kern(h) for h in h_ts) / len(h_ts)
    B = len(K_s)
    total, count = 0.0, 0
    for i in range(B):
        for j in range(B):
            if i != j or include_diagonal:
                total += (K_s[i, j] - K_t[i, j]) ** 2
                count += 1
    return total / count


def kd(z_s, z_ts, T):
    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()
    z_s = np.asarray(z_s, np.float64)
    total = 0.0
    for b in range(len(z_s)):
        q = softmax(z_s[b] / T)
        p = sum(softmax(np.asarray(z_t, np.float64)[b] / T) for z_t in z_ts) / len(z_ts)
        total += np.sum(p * (np.log(p) - np.log(q)))
    return total / len(z_s) * T * T


def smooth_l1(a, b):
    d = np.abs(np.asarray(a) - np.asarray(b))
    return np.mean(np.where(d < 1.0, 0.5 * d * d, d - 0.5))


def rkd(f_s, f_t, w_dist=25.0, w_angle=50.0):
    def dists(f):
        f = np.asarray(f, np.float64).reshape(len(f), -1)
        B = len(f)
        D = np.array([[np.linalg.norm(f[i] - f[j]) if i != j else 0.0 for j in range(B)] for i in range(B)])
        return D / D[D > 0].mean()

    def angles(f):
        f = np.asarray(f, np.float64).reshape(len(f), -1)
        B = len(f)
        out = np.zeros((B, B, B))
        for i in range(B):
            for j in range(B):
                for k in range(B):
                    u, v = f[j] - f[i], f[k] - f[i]
                    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
                    if nu > 0 and nv > 0:
                        out[i, j, k] = u @ v / (nu * nv)
        return out.ravel()

    return w_dist * smooth_l1(dists(f_s), dists(f_t)) + w_angle * smooth_l1(angles(f_s), angles(f_t))


def sp(g_s, g_t):
    def gram(g):
        f = np.asarray(g, np.float64).reshape(len(g), -1)
        G = f @ f.T
        return G / np.linalg.norm(G, axis=1, keepdims=True)
    B = len(g_s)
    return np.sum((gram(g_t) - gram(g_s)) ** 2) / B**2
