"""The costs that maximum likelihood pairs with each output unit, gathered in one place.

=====================  ==================  ======================================================
output distribution    output unit         Function (file)
=====================  ==================  ======================================================
Gaussian               linear              ``_RegressionFunction`` MSE (regression, private)
Gaussian, learned var  linear + variance   ``_RegressionFunction`` GAUSSIAN (regression, private)
Laplace                linear              ``_RegressionFunction`` L1, LAPLACE (regression, private)
Bernoulli              sigmoid             ``BCEWithLogitsFunction`` (bernoulli)
Multinoulli            softmax             ``NLLLossFunction`` (cross_entropy; softmax cross-entropy
                                           is ``torchff.functional.cross_entropy``)
=====================  ==================  ======================================================
"""

from torchff.autograd.bernoulli import BCEWithLogitsFunction
from torchff.autograd.cross_entropy import NLLLossFunction

__all__ = [
    "BCEWithLogitsFunction",
    "NLLLossFunction",
]
