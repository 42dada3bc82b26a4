"""Hand-written backbone networks (no pretrained weights can be downloaded here): VGG-S/M today."""
