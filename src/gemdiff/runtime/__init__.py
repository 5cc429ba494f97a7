"""Plumbing of the command-line apps: config composition and errors, output folders, W&B, sweeps."""
