"""What users do with data and trained models: sample, perturb, score genes, screen gene sets,
aggregate core genes, test enrichment."""
