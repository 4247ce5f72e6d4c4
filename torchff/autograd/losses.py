"""The costs that maximum likelihood pairs with each output unit, gathered in one place.

=====================  ==================  ==========================================
output distribution    output unit         Function (file)
=====================  ==================  ==========================================
Gaussian               linear              ``MSELossFunction`` (regression)
Gaussian, learned var  linear + variance   ``GaussianNLLFunction`` (regression)
Laplace                linear              ``L1LossFunction``, ``LaplaceNLLFunction``
Bernoulli              sigmoid             ``BCEWithLogitsFunction`` (bernoulli)
Multinoulli            softmax             ``CrossEntropyFunction``, ``CrossEntropyProbsFunction``,
                                           ``NLLLossFunction`` (cross_entropy)
=====================  ==================  ==========================================
"""

from torchff.autograd.bernoulli import BCEWithLogitsFunction
from torchff.autograd.cross_entropy import (
    CrossEntropyFunction,
    CrossEntropyProbsFunction,
    CrossEntropyRows,
    NLLLossFunction,
    cross_entropy_rows,
)
from torchff.autograd.regression import GaussianNLLFunction, L1LossFunction, LaplaceNLLFunction, MSELossFunction

__all__ = [
    "BCEWithLogitsFunction",
    "CrossEntropyFunction",
    "CrossEntropyProbsFunction",
    "CrossEntropyRows",
    "GaussianNLLFunction",
    "L1LossFunction",
    "LaplaceNLLFunction",
    "MSELossFunction",
    "NLLLossFunction",
    "cross_entropy_rows",
]
