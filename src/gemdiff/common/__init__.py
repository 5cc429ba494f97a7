"""Small modules every layer shares: project exceptions, batch keys, option checks, safe files."""
