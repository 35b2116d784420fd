"""streamfer: facial emotions on video streams."""
