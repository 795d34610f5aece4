"""LUPI: all-in-one image restoration guided by a privileged degradation prior.

Public names: the config (`ModelConfig`), the three assemblies of the paper
(`build_backbone`, `build_teacher`, `build_student`), and inference
(`load_pretrained`).
"""
from .config import ModelConfig
from .models import build_backbone, build_student, build_teacher
from .pipeline import Pipeline, load_pretrained

__all__ = ["ModelConfig", "Pipeline", "build_backbone", "build_student", "build_teacher", "load_pretrained"]
