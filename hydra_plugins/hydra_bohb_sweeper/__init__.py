"""BOHB for Hydra: Optuna's TPE sampler + Hyperband pruner, with pruning mid-training in any process."""
