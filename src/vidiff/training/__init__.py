"""vidiff.training: the one trainer core every trainer of vidiff runs on.

    loop.py            `Trainer` on accelerate: budget, EMA, per-step RNG, lr schedule, grad clip, logs,
                       previews, snapshots, SIGINT/SIGTERM save; a `Task` turns a batch into losses
    state.py           the resumable state as one unit (step folder + checksums + LATEST pointer)
    data.py            `step_generator`, `StepBatches` (DataLoader; draws a pure function of seed, step, rank)
    surgery.py         init from a checkpoint, input-layer widening, frozen parameters
    diffusion_task.py  the video diffusion recipe behind `vidiff train` (TrainConfig)
"""
from .data import StepBatches, TensorItems, step_generator, step_seed
from .loop import LoopConfig, OptimizerSpec, Task, Trainer, ema_decay_at, make_accelerator, update_ema
from .state import clean_orphans, committed, load_state, read_state, save_state
from .surgery import freeze, init_weights_from, parameter_filter, widen_input_channels

__all__ = ["StepBatches", "TensorItems", "step_generator", "step_seed", "LoopConfig", "OptimizerSpec", "Task",
           "Trainer", "ema_decay_at", "make_accelerator", "update_ema", "clean_orphans", "committed", "load_state",
           "read_state", "save_state", "freeze", "init_weights_from", "parameter_filter", "widen_input_channels"]
