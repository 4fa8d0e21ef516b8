"""vidiff.diffusion"""
