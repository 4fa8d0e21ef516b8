"""Cross-check against diffusers (test-only dependency) on the DDPM linear-β table.

Timestep mapping: diffusers timestep k uses alphas_cumprod[k], which is our LinearSchedule at
t = (k + 1) / N; diffusers' final "alpha = 1" step is our t = 0.
"""
import pytest
import torch

from vidiff.diffusion import Denoiser, LinearSchedule, ddim, dpmpp_2m
from vidiff.diffusion.analytic import GaussianMixtureData

PRED_TYPES = {"eps": "epsilon", "v": "v_prediction"}
LIN = LinearSchedule()


@pytest.mark.parametrize("param", ["eps", "v"])
def test_ddim_step_matches_diffusers(param):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                          clip_sample=False, set_alpha_to_one=True, prediction_type=PRED_TYPES[param],
                          timestep_spacing="leading")
    sched.set_timesteps(10)
    g = torch.Generator().manual_seed(0)
    for k in sched.timesteps.tolist():
        prev = k - 1000 // 10
        z = torch.randn(2, 3, 4, 8, 8, generator=g, dtype=torch.float64)
        out = torch.randn(2, 3, 4, 8, 8, generator=g, dtype=torch.float64)  # an arbitrary network output
        ref = sched.step(out, k, z, eta=0.0).prev_sample
        den = Denoiser(lambda z_, t_, c_: out, parameterization=param)
        grid = [float(LIN.t_from_timestep(k)), float(LIN.t_from_timestep(prev)) if prev >= 0 else 0.0]
        ours = ddim(den, z, LIN, 0, spacing=grid)
        assert torch.allclose(ours, ref, atol=1e-5), (param, k)


@pytest.mark.parametrize("param,steps", [("eps", 10), ("v", 10), ("v", 25)])
def test_dpmpp_2m_matches_diffusers(param, steps):
    from diffusers import DPMSolverMultistepScheduler

    sched = DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                        beta_schedule="linear", algorithm_type="dpmsolver++", solver_order=2,
                                        prediction_type=PRED_TYPES[param], final_sigmas_type="zero",
                                        lower_order_final=True)
    sched.set_timesteps(steps)
    data = GaussianMixtureData()
    model = data.model(LIN, param)  # exact network output for the mixture, given continuous t
    noise = torch.randn(512, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    z = noise.clone()
    for k in sched.timesteps.tolist():
        t = LIN.t_from_timestep(k).expand(z.shape[0])
        z = sched.step(model(z, t, None), k, z).prev_sample
    grid = torch.cat([LIN.t_from_timestep(sched.timesteps), torch.zeros(1, dtype=torch.float64)])
    ours = dpmpp_2m(Denoiser(model, param), noise, LIN, steps, spacing=grid)
    assert torch.allclose(ours, z, atol=1e-4)
