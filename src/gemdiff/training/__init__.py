"""Training: the LightningModules, EMA, callbacks, the checkpoint and the fit of a config."""
