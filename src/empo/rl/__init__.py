"""Reinforcement learning with empathy rewards (EmpRL's level matching, PEER's structure and redundancy)."""
