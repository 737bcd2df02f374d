"""The project's conventions (scalings, ordering, dtype) as data, shipped inside the package.

The project's conventions (README section "Conventions printed by every report"), in a
structured form that every JSON result and every report header carries, so a reader can tell
which factors of 2, N and M a number was computed with.

>>> CONVENTIONS["fisher"]["F"]
'F = J^T J / N'
>>> "NTK parameterisation" in conventions_markdown()
True
"""
from __future__ import annotations

import copy
from typing import Dict

__all__ = ["CONVENTIONS", "SECTION_TITLES", "conventions", "conventions_markdown", "conventions_text"]

CONVENTIONS: Dict[str, Dict[str, str]] = {
    "parameterisation": {
        "name": "NTK parameterisation",
        "depth": "L = number of weight layers (L-1 hidden layers); widths M_0 (input dim), M_1..M_{L-1}, M_L = C outputs",
        "layer": "u_l = (sigma_w / sqrt(M_{l-1})) W_l h_{l-1} + sigma_b b_l, h_0 = x, h_l = phi(u_l) for l < L, f(x) = u_L",
        "initialisation": "W_l, b_l entries i.i.d. N(0, 1); sigma_w2 = sigma_w^2, sigma_b2 = sigma_b^2 are the user-facing knobs",
        "parameter_blocks": "theta_l = (W_l, b_l), bias as the last column of the augmented weight matrix; sigma_b2 = 0 means no bias parameters",
    },
    "kernels": {
        "nngp_first": "Sigma^(1)(x,x') = sigma_w2 * x.x'/M_0 + sigma_b2",
        "nngp_recursion": "Sigma^(l+1) = sigma_w2 * E[phi(u) phi(u')] + sigma_b2, (u,u') ~ N(0, Sigma^(l) restricted to {x,x'})",
        "derivative": "dotSigma^(l+1) = sigma_w2 * E[phi'(u) phi'(u')]",
        "ntk_recursion": "Theta^(1) = Sigma^(1), Theta^(l+1) = Theta^(l) * dotSigma^(l+1) + Sigma^(l+1), Theta = Theta^(L)",
        "layer_ntk": "Theta_l = Sigma^(l) * prod_{k=l+1..L} dotSigma^(k), sum_l Theta_l = Theta; over C outputs Theta (x) I_C",
    },
    "loss": {
        "data": "X is N x M_0, Y is N x C",
        "loss": "Loss(theta) = 1/(2N) * sum_n ||f(x_n) - y_n||^2",
        "residual": "r = f(X) - Y, stacked sample-major",
    },
    "fisher": {
        "jacobian": "J = d f(X) / d theta, shape (N*C) x P, rows sample-major (n, c); J_l = columns of theta_l",
        "F": "F = J^T J / N",
        "gradient": "grad = J^T r / N",
        "approximations": "block-diagonal F_ll; block tri-diagonal F_ll' for |l-l'| <= 1; K-FAC F_ll ~ A_{l-1} (x) B_l "
                          "(A = E[h h^T] with the bias as an extra input coordinate, B = E[delta delta^T]); "
                          "unit-wise: one block per output unit (fan-in weights and bias); diagonal",
    },
    "update": {
        "step": "theta <- theta - eta * (G + rho I)^{-1} grad",
        "min_norm": "rho = 0 means the minimum-norm (pseudo-inverse) solution, the limit rho -> 0+",
        "function_space_operator": "Theta_G = J G^+ J^T / N, an (N*C) x (N*C) matrix; r_{t+1} = (I - eta Theta_G) r_t to first order",
        "isotropy": "isotropic gradient in function space: Theta_G = alpha I; then r_t = (1 - eta alpha)^t r_0, "
                    "best eta = 1/alpha, stable for 0 < eta < 2/alpha",
        "gram_normalisation": "numerics layer Grams J_l J_l^T are WITHOUT the 1/N (they converge to Theta_l (x) I_C); the 1/N cancels in NGD formulas",
    },
    "ordering": {
        "rows": "sample-major: row (n, c) of J and of Theta_G",
        "parameters": "theta = concatenation over layers of the row-major flattened augmented weight matrices",
    },
    "numbers": {
        "dtype": "float64 everywhere by default (float32 only where a user asks)",
        "randomness": "every draw from a seeded numpy.random.Generator; each result records its seed",
        "finite_width": "finite-width claims report an error and the width measured at; limit statements are checked by "
                        "width sweeps with a fitted log-log slope (e.g. error ~ M^-1/2)",
    },
}

SECTION_TITLES = {
    "parameterisation": "Network (parameterisation)",
    "kernels": "Infinite-width kernels",
    "loss": "Loss",
    "fisher": "Fisher and approximations",
    "update": "NGD update and isotropy",
    "ordering": "Ordering",
    "numbers": "Numbers (dtype, randomness, sweeps)",
}


def conventions() -> Dict[str, Dict[str, str]]:
    """A deep copy of :data:`CONVENTIONS` (safe to modify)."""
    return copy.deepcopy(CONVENTIONS)


def conventions_markdown() -> str:
    """The conventions as a Markdown section body (code spans keep the formulas verbatim)."""
    lines = []
    for key, entries in CONVENTIONS.items():
        lines.append(f"- **{SECTION_TITLES[key]}**")
        for name, text in entries.items():
            lines.append(f"  - {name.replace('_', ' ')}: `{text}`")
    return "\n".join(lines)


def conventions_text() -> str:
    """The conventions as plain text (one line per entry)."""
    lines = []
    for key, entries in CONVENTIONS.items():
        lines.append(f"[{SECTION_TITLES[key]}]")
        lines += [f"  {name}: {text}" for name, text in entries.items()]
    return "\n".join(lines)
