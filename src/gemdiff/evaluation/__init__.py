"""Scoring generated and perturbed expression against real data, embeddings, and plots."""
