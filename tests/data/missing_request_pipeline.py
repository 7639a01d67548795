"""A pipeline file that forgets to define ``request`` (the CLI must say so)."""

import numpy as np

import daskgp as gp

pipeline = gp.ArraySource(gp.ArrayKey("RAW"), np.zeros((4, 4, 4), np.uint8))
