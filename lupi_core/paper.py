"""The paper's published numbers, each once: Tables 1-5 of "Learning Privileged
Degradation Priors for All-in-One Image Restoration" (../shared/paper.md).

evaluate, ablate, bench and `info` print them beside what we measure.
"""

# Tables 1 (3task) and 2 (5task): (PSNR, SSIM) per column in evaluate.BENCHMARKS order, then the average.
RESTORATION = {
    "3task": {
        "AirNet": [(27.94, .962), (34.90, .967), (33.92, .933), (31.26, .888), (28.00, .797), (31.20, .910)],
        "PromptIR": [(30.58, .974), (36.37, .972), (33.98, .933), (31.31, .888), (28.06, .799), (32.06, .913)],
        "Art-PromptIR": [(30.83, .979), (37.94, .982), (34.06, .934), (31.42, .891), (28.14, .801), (32.49, .917)],
        "InstructIR": [(30.22, .959), (37.98, .978), (34.15, .933), (31.52, .890), (28.30, .804), (32.43, .913)],
        "PromptIR-TUR": [(31.17, .978), (38.57, .984), (34.06, .932), (31.40, .887), (28.13, .797), (32.67, .916)],
        "AdaIR": [(31.06, .980), (38.64, .983), (34.12, .935), (31.46, .892), (28.19, .802), (32.69, .918)],
        "VLU-Net": [(30.71, .980), (38.93, .984), (34.13, .935), (31.48, .892), (28.23, .804), (32.70, .919)],
        "MoCE-IR": [(31.34, .979), (38.57, .984), (34.11, .932), (31.45, .888), (28.18, .800), (32.73, .917)],
        "LUPI (paper)": [(31.86, .983), (38.92, .985), (34.23, .937), (31.58, .894), (28.33, .807), (32.98, .921)],
    },
    "5task": {
        "AirNet": [(21.04, .884), (32.98, .951), (30.91, .882), (24.35, .781), (18.18, .735), (25.49, .847)],
        "PromptIR": [(25.20, .931), (35.94, .964), (31.17, .882), (27.32, .842), (20.94, .799), (28.11, .883)],
        "Gridformer": [(26.79, .951), (36.61, .971), (31.45, .885), (29.22, .884), (22.59, .831), (29.33, .904)],
        "InstructIR": [(27.10, .956), (36.84, .973), (31.40, .873), (29.40, .886), (23.00, .836), (29.55, .908)],
        "Transweather-TUR": [(29.68, .966), (33.09, .952), (30.40, .869), (26.63, .815), (23.02, .838),
                             (28.56, .888)],
        "AdaIR": [(30.53, .978), (38.02, .981), (31.35, .889), (28.12, .858), (23.00, .845), (30.20, .910)],
        "VLU-Net": [(30.84, .980), (38.54, .982), (31.43, .891), (27.46, .840), (22.29, .833), (30.11, .905)],
        "MoCE-IR": [(30.48, .974), (38.04, .982), (31.34, .887), (30.05, .899), (23.00, .852), (30.58, .919)],
        "LUPI (paper)": [(31.00, .981), (39.20, .986), (31.55, .894), (29.46, .886), (23.66, .865), (30.97, .922)],
    },
}
# The paper's test sets where they differ from ours (ours are named in evaluate.COLUMNS).
RESTORATION_DATASETS = {"dehaze": "SOTS-outdoor", "deblur": "GoPro", "lowlight": "LOL-v1"}

# Tables 3 and 4: (PSNR, SSIM), 3-task average, per ablation variant (ablate.VARIANTS).
ABLATION = {
    "no-predictor": (31.94, 0.907),
    "no-privileged": (32.07, 0.909),
    "lupi-siamese": (32.98, 0.921),
    "lupi-add": (32.75, 0.918),
    "lupi-concat": (32.80, 0.920),
}

# Table 5: one RTX 4090, input 3x256x256, mean of 100 runs. "gmac" is the paper's "GFLOPs"
# (multiply-accumulates; see complexity.py).
COST = {
    "Restormer": {"params": 26.13e6, "gmac": 154.88, "memory_mb": 676.00, "latency_ms": 50.67,
                  "throughput_fps": 19.73},
    "PromptIR": {"params": 35.59e6, "gmac": 172.71, "memory_mb": 720.35, "latency_ms": 55.03,
                 "throughput_fps": 18.17},
    "AdaIR": {"params": 28.78e6, "gmac": 161.76, "memory_mb": 686.15, "latency_ms": 62.74,
              "throughput_fps": 15.94},
    "LUPI (paper)": {"params": 31.93e6, "gmac": 163.20, "memory_mb": 698.69, "latency_ms": 52.55,
                     "throughput_fps": 19.03},
}
