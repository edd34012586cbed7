"""Benchmarks of minigen: where the time goes, CPU versus GPU, minigen versus PyTorch.

``python -m bench`` (or ``minigen bench``) times the workloads W1..W6 of
:mod:`bench.workloads` in every column that can run on the machine (minigen on NumPy with
the reference or the Numba-CPU kernels, minigen on CuPy with the reference or the
Numba-CUDA kernels, PyTorch CPU/CUDA from :mod:`bench.torch_ref`) and writes a markdown
table, a JSON file and a log-scale bar chart (:mod:`bench.report`). ``--profile W2`` prints
a cProfile breakdown of one workload (:mod:`bench.profiling`). ``bench/coverage.py`` is a
separate script: mode coverage of the trained GAN and DDPM on PacGAN's 2-D mixtures.
"""
