"""The costs that maximum likelihood pairs with each output unit, gathered in one place.

=====================  ==================  ======================================================
output distribution    output unit         Function (file)
=====================  ==================  ======================================================
Gaussian               linear              ``_RegressionFunction`` MSE (regression, private)
Gaussian, learned var  linear + variance   ``_RegressionFunction`` GAUSSIAN (regression, private)
Laplace                linear              ``_RegressionFunction`` L1, LAPLACE (regression, private)
Bernoulli              sigmoid             ``BCEWithLogitsFunction`` (bernoulli)
Multinoulli            softmax             ``_CrossEntropyFunction``, ``_NLLLossFunction``
                                           (cross_entropy, private)
=====================  ==================  ======================================================
"""

from torchff.autograd.bernoulli import BCEWithLogitsFunction

__all__ = [
    "BCEWithLogitsFunction",
]
