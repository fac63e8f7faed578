"""Curriculum schedulers (pure JAX state inside the jitted training loop). Empty for now."""
