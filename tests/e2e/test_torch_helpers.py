"""lossweight.torch in one process against a live daemon: the gradient
helpers, what a Weighter's scalar back-propagates for loss-weight and for
grad_coeffs methods, and the checkpoint hooks. (Two ranks under DDP:
test_ddp.py.)"""
import pytest

torch = pytest.importorskip("torch")

from lossweight import Client  # noqa: E402
from lossweight.torch import Weighter, grad_norms, gram, jacobian  # noqa: E402

torch.set_num_threads(1)


class Net(torch.nn.Module):
    def __init__(self, dtype=torch.float64):
        super().__init__()
        torch.manual_seed(3)
        self.bottom = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh()).to(dtype)
        self.heads = torch.nn.ModuleList(torch.nn.Linear(8, 1).to(dtype) for _ in range(3))

    def forward(self, x):
        h = self.bottom(x)
        return [hd(h).squeeze(-1) for hd in self.heads]


def losses_of(net, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 5, generator=g, dtype=dtype)
    ys = torch.randn(3, 16, generator=g, dtype=dtype)
    outs = net(x)
    return [((o - y) ** 2).mean() * s for o, y, s in zip(outs, ys, (30.0, 1.0, 0.1))]


def per_task(net, losses, params):
    rows = []
    for L in losses:
        net.zero_grad(set_to_none=True)
        L.backward(retain_graph=True)
        rows.append(torch.cat([p.grad.reshape(-1) for p in params]))
    net.zero_grad(set_to_none=True)
    return torch.stack(rows)


@pytest.fixture
def c(daemon):
    with Client(daemon.url, timeout=30) as cl:
        yield cl


def test_grad_norms_and_gram_match_per_task_backward():
    net = Net()
    ls = losses_of(net)
    shared = list(net.bottom.parameters())
    Jref = per_task(net, ls, shared)
    J = jacobian(ls, shared)
    assert J.dtype == torch.float64 and J.shape == (3, sum(p.numel() for p in shared))
    assert torch.equal(J, Jref)
    n = grad_norms(ls, shared)
    G = gram(ls, shared)
    assert all(type(v) is float for v in n)
    assert all(type(v) is float for row in G for v in row)
    assert n == pytest.approx(Jref.norm(dim=1).tolist(), rel=1e-14)
    Gref = Jref @ Jref.T
    for i in range(3):
        for j in range(3):
            assert G[i][j] == G[j][i]
            assert G[i][j] == pytest.approx(float(Gref[i, j]), rel=1e-13, abs=1e-15)
    assert all(p.grad is None for p in net.parameters())  # .grad untouched
    # the graph is kept: the caller can still back-propagate
    sum(ls).backward()


def test_gram_is_in_the_gradients_dtype():
    net = Net(torch.float32)
    ls = losses_of(net, dtype=torch.float32)
    assert jacobian(ls, net.bottom.parameters()).dtype == torch.float32


def test_unused_parameter_gives_zero_gradient():
    net = Net()
    ls = losses_of(net)
    extra = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    J = jacobian(ls, list(net.bottom.parameters()) + [extra])
    assert torch.all(J[:, -2:] == 0)


def test_loss_weight_method_backpropagates_the_weighted_sum(c):
    net = Net()
    w = Weighter(c, "th-uw", "uw", tasks=["a", "b", "c"], params={"lr": 0.1})
    for step in range(3):
        ls = losses_of(net, seed=step)
        loss = w(step, ls)
        want = sum(wi * L for wi, L in zip(w.weights, ls))
        assert float(loss) == pytest.approx(float(want), rel=1e-15)
        assert w.last_report["losses"] == [float(L) for L in ls]
        assert w.last_report["gram"] is None and w.last_report["grad_norms"] is None
    assert w.decision.method == "uw" and w.decision.step == 2


def test_gradnorm_sends_grad_norms_of_norm_params(c):
    net = Net()
    last = list(net.bottom[0].parameters())
    w = Weighter(c, "th-gn", "gradnorm", tasks=["a", "b", "c"],
                 shared_params=net.bottom.parameters(), norm_params=last)
    ls = losses_of(net)
    w(0, ls)
    assert w.last_report["grad_norms"] == grad_norms(ls, last)


def test_grad_coeffs_method_puts_the_combination_on_shared_and_own_gradient_on_heads(c):
    net = Net()
    shared = list(net.bottom.parameters())
    w = Weighter(c, "th-mgda", "mgda", tasks=["a", "b", "c"], shared_params=shared)
    ls = losses_of(net)
    J = per_task(net, ls, shared)
    heads = [per_task(net, [ls[i]], list(net.heads[i].parameters()))[0] for i in range(3)]
    loss = w(0, ls)
    assert w.last_report["gram"] == gram(ls, shared)
    coeff = torch.tensor(w.weights, dtype=torch.float64)
    assert float(loss) == pytest.approx(float(sum(ls)), rel=1e-15)
    net.zero_grad(set_to_none=True)
    loss.backward()
    got = torch.cat([p.grad.reshape(-1) for p in shared])
    want = coeff @ J
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12 * float(J.abs().max()))
    for i in range(3):  # unweighted, whatever c_i is
        g = torch.cat([p.grad.reshape(-1) for p in net.heads[i].parameters()])
        assert torch.allclose(g, heads[i], rtol=1e-12, atol=0)


def test_head_scale_reproduces_libmtl_db_mtl_heads(c):
    net = Net()
    shared = list(net.bottom.parameters())
    w = Weighter(c, "th-db", "db_mtl", tasks=["a", "b", "c"], shared_params=shared,
                 head_scale=lambda L: [1 / (v + 1e-8) for v in L])
    ls = losses_of(net)
    J = per_task(net, ls, shared)
    heads = [per_task(net, [ls[i]], list(net.heads[i].parameters()))[0] for i in range(3)]
    loss = w(0, ls)
    assert w.last_report["grad_norms"] is not None and w.last_report["gram"] is None
    net.zero_grad(set_to_none=True)
    loss.backward()
    got = torch.cat([p.grad.reshape(-1) for p in shared])
    assert torch.allclose(got, torch.tensor(w.weights, dtype=torch.float64) @ J, rtol=1e-10)
    for i in range(3):
        g = torch.cat([p.grad.reshape(-1) for p in net.heads[i].parameters()])
        assert torch.allclose(g, heads[i] / (float(ls[i]) + 1e-8), rtol=1e-12)


def test_weighter_refuses_gradient_methods_without_shared_params(c):
    with pytest.raises(ValueError):
        Weighter(c, "th-x", "pcgrad", tasks=["a", "b"])
    with pytest.raises(ValueError):
        Weighter(c, "th-y", "ew", tasks=["a", "b"])(0, [torch.tensor(1.0)])


def test_losses_by_task_name(c):
    w = Weighter(c, "th-names", "power_mean", tasks=["reg", "cls"])
    loss = w(0, {"cls": torch.tensor(4.0), "reg": torch.tensor(1.0)})
    assert w.last_report["losses"] == [1.0, 4.0]
    assert float(loss) == pytest.approx(2.0)  # the geometric mean


def test_state_dict_round_trip_and_open_steps_left_out(c, daemon):
    w0 = Weighter(c, "th-ckpt", "dwa", tasks=["a", "b"], world_size=2, rank=0)
    other = Client(daemon.url, timeout=30)
    ls = [torch.tensor(5.0), torch.tensor(0.5)]
    for step in range(4):  # rank 1 in the background, rank 0 through the Weighter
        c.report("th-ckpt", step, [6.0 - step, 0.6], rank=1, epoch=step, wait=False)
        w0(step, [ls[0] - step, ls[1]], epoch=step)
    want = [w0.weights]
    # rank 1 already reported step 4 when rank 0 checkpoints after step 3
    other.report("th-ckpt", 4, [2.0, 0.6], rank=1, epoch=4, wait=False)
    raw = c.export_state("th-ckpt")
    assert raw["position"]["open_steps"] and raw["position"]["rank_steps"] == [3, 4]
    ckpt = w0.state_dict()
    assert ckpt["position"]["open_steps"] == []
    assert ckpt["position"]["rank_steps"] == [3, 3]
    # the run goes on (rank 1's step 4 differs this time) ...
    other.report("th-ckpt", 5, [1.0, 0.6], rank=1, epoch=5, wait=False)
    # ... and is resumed from the checkpoint: rank 1 resends step 4 with
    # other numbers, which the kept report would have refused (409)
    w0.load_state_dict(ckpt)
    assert c.weights("th-ckpt").weights == want[0]
    other.report("th-ckpt", 4, [2.5, 0.6], rank=1, epoch=4, wait=False)
    d = w0(4, [ls[0] - 4, ls[1]], epoch=4)
    assert w0.decision.step == 4 and w0.decision.ranks == 2
    assert d is not None
