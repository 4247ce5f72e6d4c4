"""The CUDA kernels, in Triton: one module per op family, imported on the first CUDA call only.

Every module here imports ``triton`` at the top; nothing outside the CUDA implementations in
``torchff/kernels/<family>.py`` (and the tests) imports these modules, so a CPU-only install
never imports triton. The kernels are tested without a GPU: under ``TRITON_INTERPRET=1`` on
CPU tensors, against the op's CPU kernel, and compiled ahead of time for sm_80 and sm_90
(``tests/triton_support.py``).
"""
