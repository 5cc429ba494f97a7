"""Keys of a batch dict, shared by the data module and the training modules."""

X = "x"  # (B, n_genes) scaled expression
Y = "y"  # (B,) integer class index
T = "t"  # (B,) integer diffusion step (validation batches only)
NOISE = "noise"  # (B, n_genes) fixed noise (validation batches only)
