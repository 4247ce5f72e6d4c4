"""The costs that maximum likelihood pairs with each output unit, gathered in one place.

=====================  ==================  ==========================================
output distribution    output unit         Function (file)
=====================  ==================  ==========================================
Gaussian               linear              ``MSELossFunction`` (regression)
Gaussian, learned var  linear + variance   ``GaussianNLLFunction`` (regression)
Laplace                linear              ``L1LossFunction``, ``LaplaceNLLFunction``
Bernoulli              sigmoid             ``BCEWithLogitsFunction`` (bernoulli)
Multinoulli            softmax             ``NLLLossFunction`` (cross_entropy; softmax cross-entropy
                                           is ``torchff.functional.cross_entropy``)
=====================  ==================  ==========================================
"""

from torchff.autograd.bernoulli import BCEWithLogitsFunction
from torchff.autograd.cross_entropy import NLLLossFunction
from torchff.autograd.regression import GaussianNLLFunction, L1LossFunction, LaplaceNLLFunction, MSELossFunction

__all__ = [
    "BCEWithLogitsFunction",
    "GaussianNLLFunction",
    "L1LossFunction",
    "LaplaceNLLFunction",
    "MSELossFunction",
    "NLLLossFunction",
]
