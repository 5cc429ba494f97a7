"""Names shared across layers: batch keys and the checkpoint section."""

# Keys of a batch dict.
X = "x"  # (B, n_genes) scaled expression
Y = "y"  # (B,) integer class index
T = "t"  # (B,) integer diffusion step (validation batches only)
NOISE = "noise"  # (B, n_genes) fixed noise (validation batches only)

# Key of the section a gemdiff checkpoint adds next to Lightning's own.
CKPT_SECTION = "gemdiff"
