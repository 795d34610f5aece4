"""Shared test set-up: one CPU thread (the machine has two, often busy) and the
repository root on the import path."""
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)
