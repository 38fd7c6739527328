"""lossweight in a DistributedDataParallel training loop.

The part between the "README" markers is, character for character, the code
of the "Use it from PyTorch" section of clients/README.md (a test checks
that), and it is what the two-rank end-to-end test (tests/e2e/test_ddp.py)
trains with: a shared-bottom model with a regression head and a binary
classification head, every rank posting its losses (and, for gradient
methods, the Gram matrix of its task gradients) to lossweightd each step.
"""
# --- README: Use it from PyTorch (begin) ---
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from lossweight import Client
from lossweight.torch import Weighter


class SharedBottom(torch.nn.Module):
    """A shared bottom and one head per task."""

    def __init__(self, d_in=16, d_hidden=64, tasks=2):
        super().__init__()
        self.bottom = torch.nn.Sequential(
            torch.nn.Linear(d_in, d_hidden), torch.nn.ReLU(),
            torch.nn.Linear(d_hidden, d_hidden), torch.nn.ReLU())
        self.heads = torch.nn.ModuleList(torch.nn.Linear(d_hidden, 1) for _ in range(tasks))

    def forward(self, x):
        h = self.bottom(x)
        return [head(h).squeeze(-1) for head in self.heads]


def setup(url, job, method, params=None):
    """On every rank, after torch.distributed.init_process_group()."""
    torch.manual_seed(0)
    model = DDP(SharedBottom())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    # Creates the job on first use (every rank may: the same spec is accepted
    # again); reads from GET /v1/methods what the method needs.
    weighter = Weighter(Client(url), job, method, tasks=["reg", "cls"],
                        shared_params=model.module.bottom.parameters(), params=params)
    return model, opt, weighter


def train_step(model, opt, weighter, step, batch, epoch):
    x, y_reg, y_cls = batch
    out_reg, out_cls = model(x)
    losses = [F.mse_loss(out_reg, y_reg),
              F.binary_cross_entropy_with_logits(out_cls, y_cls)]
    # Posts this rank's report (losses; grad norms or the Gram matrix if the
    # method needs them) and returns, once every rank has reported, the
    # scalar to back-propagate: sum_i w_i L_i, or for gradient methods
    # (mgda, pcgrad, ...) one whose backward puts sum_i c_i g_i on the shared
    # layers and each task's own gradient on its head.
    loss = weighter(step, losses, epoch=epoch)
    opt.zero_grad()
    loss.backward()  # DDP averages the gradients across ranks as usual
    opt.step()
    return losses


def train(model, opt, weighter, batches, steps_per_epoch, start=0):
    for step in range(start, len(batches)):
        losses = train_step(model, opt, weighter, step, batches[step],
                            epoch=step // steps_per_epoch)
        yield step, losses


def checkpoint(model, opt, weighter):
    """After step k: the model, the optimizer and the job's state together."""
    return {"model": model.module.state_dict(), "opt": opt.state_dict(),
            "lossweight": weighter.state_dict()}


def resume(model, opt, weighter, ckpt):
    """On every rank, then train(..., start=k + 1)."""
    model.module.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["opt"])
    weighter.load_state_dict(ckpt["lossweight"])  # rank 0 restores; all meet at a barrier
# --- README: Use it from PyTorch (end) ---
