"""Side-by-side benchmarks of torchff against torch (run ``python -m benchmarks.run``)."""
