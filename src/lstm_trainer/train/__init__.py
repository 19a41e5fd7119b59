"""Setup (Accelerator + DeepSpeed from the config and the launch), the fit loop, checkpoints."""
