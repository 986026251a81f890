"""`@` / `matmul` end to end: named dims checked at compile time (tests/test_errors.py)
and when values are set, the compiled product against the reference and numpy, and
incremental recompute across values of different shapes."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FIXTURES, assert_agree
from serverless_ray import errors, load

MODEL = FIXTURES / "dags" / "factor_model.py"
T, N, K = 40, 9, 3


def model_inputs(seed=0, n=N):
    rng = np.random.default_rng(seed)
    returns = rng.standard_normal((T, n)) * 0.02
    returns[rng.random(returns.shape) < 0.03] = np.nan
    return dict(returns=returns, loadings=rng.standard_normal((n, K)), betas=rng.standard_normal((K, n)),
                mix=rng.standard_normal((K, K)))


@pytest.fixture(scope="module")
def model_rs(compiled):
    return compiled(MODEL)


@pytest.fixture(params=["compiled", "reference"])
def FactorModel(request, model_rs):
    return model_rs.FactorModel if request.param == "compiled" else load(MODEL)


def test_compiled_factor_model_equals_the_reference_and_numpy(model_rs):
    inputs = model_inputs()
    names = ["exposure", "rotated", "fitted", "residual", "crowding"]
    got = model_rs.FactorModel(**inputs).compute(names)
    want = load(MODEL)(**inputs).compute(names)
    for name in names:
        assert_agree(got[name], want[name], rtol=1e-9, atol=1e-12)
    r, f, b = inputs["returns"], inputs["loadings"], inputs["betas"]
    assert got["exposure"].shape == (T, K) and got["fitted"].shape == (T, N)
    assert_agree(got["exposure"], r @ f)
    assert_agree(got["crowding"], ((r @ f) * 2 @ b) * ((r @ f) @ b) + 1)


def test_inputs_must_agree_on_each_named_dim(FactorModel):
    inputs = model_inputs()
    with pytest.raises(errors.ShapeError, match=r"input `loadings` has shape \(8, 3\), expected \(N, K\) with "
                                                r"N = 9, the size input `returns` gives it"):
        FactorModel(**{**inputs, "loadings": np.ones((N - 1, K))})
    m = FactorModel(**inputs)
    before = m.fitted().copy()
    with pytest.raises(errors.ShapeError, match=r"input `mix` has shape \(3, 4\), expected \(K, K\) with K = 3"):
        m.update(mix=np.ones((K, K + 1)))
    with pytest.raises(errors.ShapeError, match="input `betas`"):
        m.update(betas=np.ones((K, N + 1)))
    np.testing.assert_array_equal(m.fitted(), before)  # a failed update changes nothing


def test_a_dim_can_change_when_every_input_using_it_changes(FactorModel):
    m = FactorModel(**model_inputs())
    bigger = model_inputs(seed=1, n=N + 4)
    m.update(**bigger)  # N grows from 9 to 13 everywhere at once
    assert m.fitted().shape == (T, N + 4)
    assert_agree(m.exposure(), bigger["returns"] @ bigger["loadings"])


def test_changing_a_small_operand_recomputes_only_its_cone(FactorModel):
    m = FactorModel(**model_inputs())
    m.compute(["rotated", "fitted", "residual", "crowding"])
    before = m.stats()
    m.update(mix=np.eye(K))
    m.compute(["rotated", "fitted", "residual", "crowding"])
    ran = {n for n, s in m.stats().items() if s["computes"] > before[n]["computes"]}
    assert ran == {"rotated"}
