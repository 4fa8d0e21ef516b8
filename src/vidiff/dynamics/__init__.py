"""vidiff.dynamics — Generative Image Dynamics (Li et al., CVPR 2024).

flow (optical flow -> trajectories), spectral (spectral volumes <-> motion textures, .npz IO),
normalize (frequency-adaptive normalisation), splat (softmax splatting), render (image-based
renderers), modal (interactive modal dynamics), loop (seamless loops, slow motion, magnification),
procedural (oscillating scenes with true motion), motion_model (motion latent diffusion),
cli (`vidiff animate`, `vidiff dynamics ...`). Modules are imported on use, keeping `vidiff --help` fast.
"""
