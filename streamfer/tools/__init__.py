"""Tools around the product: the benchmark (:mod:`~streamfer.tools.bench`)."""
