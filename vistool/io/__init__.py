"""Image and video input."""
