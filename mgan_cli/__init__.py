"""mgan: batch image restoration with the multi-code GAN prior (Gu, Shen, Zhou, CVPR 2020)."""

__version__ = "0.1.0"
