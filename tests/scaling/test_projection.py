#!/usr/bin/env python3
"""The projection model of launch/scaling-study against cases computed by hand
(docs/scaling-model.md). Two layers, forward order L1, L2:
  L1: forward 1 ms, backward 3 ms, 250,000 gradient floats (1 MB)
  L2: forward 2 ms, backward 1 ms, 750,000 gradient floats (3 MB)
  timed compute 10 ms (so 3 ms of loss/optimizer/overhead), per-rank batch 8.
Backward runs L2 first: 750,000 floats are final at t = 1 ms, all 1,000,000 at t = 4 ms."""
import importlib.machinery
import importlib.util
import os
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
loader = importlib.machinery.SourceFileLoader("scaling_study", os.path.join(HERE, "..", "..", "launch", "scaling-study"))
spec = importlib.util.spec_from_loader("scaling_study", loader)
study = importlib.util.module_from_spec(spec)
loader.exec_module(study)

PROFILE = {"per_rank_batch": 8, "compute_ms": 10.0, "data_ms": 0.0, "layers": [
    {"layer": "L1", "forward_ms": 1.0, "backward_ms": 3.0, "grad_floats": 250000},
    {"layer": "L2", "forward_ms": 2.0, "backward_ms": 1.0, "grad_floats": 750000}]}


class Projection(unittest.TestCase):
    def step(self, n, **kw):
        kw.setdefault("latency_us", 0.0)
        return study.project(PROFILE, n, busbw_gbs=1.0, **kw)["step_ms"]

    def test_one_rank_is_the_timed_compute(self):
        self.assertAlmostEqual(self.step(1), 10.0)

    def test_one_bucket_two_ranks(self):
        # 4 MB over a 1 GB/s bus, 2(n-1)/n = 1: 4 ms, starting when all is final (t = 4 ms).
        self.assertAlmostEqual(self.step(2, bucket_mb=25, overlap=True), 14.0)
        self.assertAlmostEqual(self.step(2, bucket_mb=25, overlap=False), 14.0)

    def test_small_buckets_overlap_with_backward(self):
        # Buckets of 262,144 floats: three end by float 786,432 > 750,000, so b0 and b1 are ready
        # at t = 1 ms, b2 and b3 at t = 4 ms. 1.048576 ms each for b0-b2, 0.854272 ms for b3.
        # Overlapped: b0 1 -> 2.048576, b1 -> 3.097152, b2 4 -> 5.048576, b3 -> 5.902848;
        # exposed 1.902848 ms.
        self.assertAlmostEqual(self.step(2, bucket_mb=1, overlap=True), 11.902848, places=6)
        # Blocking: every millisecond of communication shows: 4 ms.
        self.assertAlmostEqual(self.step(2, bucket_mb=1, overlap=False), 14.0, places=6)

    def test_latency_and_ring_factor(self):
        # 4 ranks: 2(n-1)/n = 1.5 -> 6 ms, plus 10 us.
        self.assertAlmostEqual(self.step(4, bucket_mb=25, latency_us=10.0), 10.0 + 6.01, places=6)

    def test_strong_scaling_shrinks_compute(self):
        # Half the per-rank batch: compute 5 ms, backward 2 ms; one 4 ms bucket from t = 2 ms.
        self.assertAlmostEqual(self.step(2, bucket_mb=25, per_rank_batch=4), 9.0)

    def test_layer_times_are_fitted_into_the_timed_compute(self):
        slow = dict(PROFILE, compute_ms=3.5)  # layers sum to 7 ms: everything scaled by 0.5
        p = study.project(slow, 1, busbw_gbs=1.0, latency_us=0.0)
        self.assertAlmostEqual(p["step_ms"], 3.5)
        self.assertAlmostEqual(p["backward_ms"], 2.0)


class Arguments(unittest.TestCase):
    def test_rank_lists(self):
        self.assertEqual(study.rank_list("4,1,2,2"), [1, 2, 4])
        for bad in ("", ",", "1,x", "0", "-2"):
            with self.assertRaises(study.UsageError):
                study.rank_list(bad)


if __name__ == "__main__":
    unittest.main(verbosity=2)
