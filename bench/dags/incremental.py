"""Five inputs; factors mixing window and row kernels (written by bench/make_dags.py)."""

from serverless_ray import Input, dag

# flake8: noqa: F821


@dag
class Incremental:
    a: Input
    b: Input
    c: Input
    d: Input
    e: Input

    def f01(self):
        return rank(ts_mean(a - b, 10)) * ts_std(a, 20)

    def f02(self):
        return rank(ts_mean(a - c, 10)) * ts_std(a, 20)

    def f03(self):
        return rank(ts_mean(a - d, 10)) * ts_std(a, 20)

    def f04(self):
        return rank(ts_mean(a - e, 10)) * ts_std(a, 20)

    def f05(self):
        return rank(ts_mean(b - c, 10)) * ts_std(b, 20)

    def f06(self):
        return rank(ts_mean(b - d, 10)) * ts_std(b, 20)

    def f07(self):
        return rank(ts_mean(b - e, 10)) * ts_std(b, 20)

    def f08(self):
        return rank(ts_mean(c - d, 10)) * ts_std(c, 20)

    def f09(self):
        return rank(ts_mean(c - e, 10)) * ts_std(c, 20)

    def f10(self):
        return rank(ts_mean(d - e, 10)) * ts_std(d, 20)

    def f11(self):
        return zscore(correlation(a, ts_mean(a, 5), 10))

    def f12(self):
        return zscore(correlation(b, ts_mean(b, 5), 10))

    def f13(self):
        return zscore(correlation(c, ts_mean(c, 5), 10))

    def f14(self):
        return zscore(correlation(d, ts_mean(d, 5), 10))

    def f15(self):
        return zscore(correlation(e, ts_mean(e, 5), 10))
