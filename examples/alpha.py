"""The main example: a small factor DAG over (time x assets) panels.

    sray-gen check examples/alpha.py     # the graph, or errors pointing at the line
    sray-gen build examples/alpha.py     # compiles and installs the module `alpha_rs`
    python examples/alpha_demo.py        # computes it, compiled and in pure Python
"""

from serverless_ray import Input, dag


@dag
class Alpha:
    """Price factors from daily open, close, high and low."""

    open: Input
    close: Input
    high: Input
    low: Input

    def f1(self):
        """Sum of open and close."""
        return self.open + self.close

    def f2(self):
        """Close minus open: the day's move (bare names resolve to inputs too)."""
        return close - open  # noqa: F821 - resolved by sray-gen, not by Python

    def f3(self):
        """Product of f1 and f2."""
        return self.f1 * self.f2

    def spread(self):
        """The day's range relative to its midpoint."""
        mid = (self.high + self.low) / 2
        return (self.high - self.low) / mid

    def breakout(self):
        """Signed strength of a close outside the open-close body, else 0."""
        up = where(self.close > self.open, self.f2 / (self.high - self.low), 0)  # noqa: F821
        return np.sign(self.f2) * minimum(abs(up), 1.0)  # noqa: F821

    def score(self):
        """A blend of the factors above."""
        return 0.5 * self.f3 - 0.25 * self.spread + self.breakout
