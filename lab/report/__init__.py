"""Reporting: figures, run and sweep reports, studies (conditions x seeds with a verdict)."""
