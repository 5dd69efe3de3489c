"""Learned models: the seed systems' networks run by headsplat's own code from the users' released weights
(found, read safely and matched strictly by :mod:`.weights`), and generic samplers."""
