"""Each window op at two window lengths (written by bench/make_dags.py)."""

from serverless_ray import Input, dag

# flake8: noqa: F821


@dag
class Windows:
    x: Input
    y: Input

    def ts_sum_20(self):
        return ts_sum(x, 20)

    def ts_sum_250(self):
        return ts_sum(x, 250)

    def ts_mean_20(self):
        return ts_mean(x, 20)

    def ts_mean_250(self):
        return ts_mean(x, 250)

    def ts_std_20(self):
        return ts_std(x, 20)

    def ts_std_250(self):
        return ts_std(x, 250)

    def ts_min_20(self):
        return ts_min(x, 20)

    def ts_min_250(self):
        return ts_min(x, 250)

    def ts_max_20(self):
        return ts_max(x, 20)

    def ts_max_250(self):
        return ts_max(x, 250)

    def ts_argmax_20(self):
        return ts_argmax(x, 20)

    def ts_argmax_250(self):
        return ts_argmax(x, 250)

    def ts_rank_20(self):
        return ts_rank(x, 20)

    def ts_rank_250(self):
        return ts_rank(x, 250)

    def ts_product_20(self):
        return ts_product(x, 20)

    def ts_product_250(self):
        return ts_product(x, 250)

    def decay_linear_20(self):
        return decay_linear(x, 20)

    def decay_linear_250(self):
        return decay_linear(x, 250)

    def correlation_20(self):
        return correlation(x, y, 20)

    def correlation_250(self):
        return correlation(x, y, 250)
