"""Editing inversions: directions (SeFa, GANSpace, boundaries), rendered frames, latents on disk."""
