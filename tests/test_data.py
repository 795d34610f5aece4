"""Training datasets: layouts, pairing, determinism, mixtures and recipes, on tiny generated folders."""
import math
import pickle
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from helpers import picture, recipe_layout, write
from lupi_core.data import (
    FolderPairs,
    SyntheticPairs,
    TaskMixture,
    noisy_folder,
    pair_folders,
    promptir_datasets,
    random_patch_pair,
    with_counterfactuals,
)
from lupi_core.degrade import reach
from lupi_core.recipes import TaskSpec, load_recipe

RECIPES = Path(__file__).resolve().parent.parent / "train" / "recipes"


def write_pairs(root, input_names, target_names, same=True):
    """Targets, and inputs equal to their target (so alignment is checkable) or to a different picture."""
    targets = [picture(k) for k in range(len(target_names))]
    write(root / "target", target_names, images=targets)
    by_stem = {Path(n).stem: t for n, t in zip(target_names, targets)}
    inputs = []
    for k, name in enumerate(input_names):
        stem = Path(name).stem
        key = next(s for s in (stem, "no" + stem, stem.split("_")[0]) if s in by_stem)
        inputs.append(by_stem[key] if same else picture(100 + k))
    write(root / "input", input_names, images=inputs)
    return root / "input", root / "target"


def check_item(item, patch, task):
    assert set(item) == {"degraded", "clean", "task", "severity"} and item["task"] == task
    for key in ("degraded", "clean"):
        t = item[key]
        assert t.shape == (3, patch, patch) and t.dtype == torch.float32
        assert 0.0 <= t.min() and t.max() <= 1.0


def same_item(a, b):
    return a["task"] == b["task"] and torch.equal(a["degraded"], b["degraded"]) and torch.equal(a["clean"], b["clean"])


# ---------------------------------------------------------------------------
# Patches


def test_random_patch_pair_crops_aligned_and_covers_all_8_transforms():
    image = picture(0, 30, 30)
    seen = set()
    for seed in range(200):
        a, b = random_patch_pair(image, image.copy(), 16, np.random.default_rng(seed))
        assert a.shape == (16, 16, 3) and np.array_equal(a, b)
        seen.add(a.tobytes())
    # Cropping from a fixed corner: the 8 flips/rotations of the same crop are all produced.
    corner = picture(1, 16, 16)
    outs = {random_patch_pair(corner, corner, 16, np.random.default_rng(s))[0].tobytes() for s in range(100)}
    assert len(outs) == 8 and corner.tobytes() in outs


def test_random_patch_pair_pads_small_images_and_rejects_misaligned_pairs():
    small = picture(2, 10, 7)
    a, b = random_patch_pair(small, small, 24, np.random.default_rng(0))
    assert a.shape == (24, 24, 3) and np.array_equal(a, b)
    with pytest.raises(ValueError, match="aligned"):
        random_patch_pair(small, picture(3, 10, 8), 8, np.random.default_rng(0))


# ---------------------------------------------------------------------------
# Synthetic pairs


def test_synthetic_pairs_items_are_deterministic_functions_of_seed_and_index(tmp_path):
    write(tmp_path / "clean", ["a.png", "b.png", "c.png"])
    ds = SyntheticPairs(tmp_path / "clean", "rain", patch_size=24, seed=5)
    assert len(ds) == 3
    item = ds[4]
    check_item(item, 24, "derain")
    assert same_item(item, ds[4])
    assert same_item(item, SyntheticPairs(tmp_path / "clean", "rain", patch_size=24, seed=5)[4])
    assert same_item(item, pickle.loads(pickle.dumps(ds))[4])
    assert not same_item(item, ds[5])
    assert not same_item(item, SyntheticPairs(tmp_path / "clean", "rain", patch_size=24, seed=6)[4])
    check_item(ds[10**12], 24, "derain")  # any index, far past len()
    with pytest.raises(IndexError):
        ds[-1]


def test_each_epoch_visits_every_image_once(tmp_path):
    write(tmp_path / "clean", [f"{k}.png" for k in range(4)])
    ds = SyntheticPairs(tmp_path / "clean", "haze", level_range=(0.0, 0.0), patch_size=40)
    # Full-height crops: the clean patch's pixel set identifies its image.
    for epoch in range(2):
        sums = {round(float(ds[epoch * 4 + k]["clean"].sum()), 3) for k in range(4)}
        assert len(sums) == 4


def test_blurred_patches_are_cut_from_a_blurred_photo_not_blurred_after_the_cut(tmp_path):
    # A dark square inside a bright frame exactly as wide as the blur's reach: the only
    # crop of that size is the dark square, and only light blurred in from the frame
    # can brighten it. Blurring the cut patch itself would leave it dark.
    margin, patch = reach("blur"), 16
    photo = np.full((patch + 2 * margin,) * 2 + (3,), 255, np.uint8)
    photo[margin:-margin, margin:-margin] = 0
    write(tmp_path / "clean", ["framed.png"], images=[photo])
    ds = SyntheticPairs(tmp_path / "clean", "blur", level_range=(1.0, 1.0), patch_size=patch)
    for k in range(4):
        item = ds[k]
        check_item(item, patch, "deblur")
        assert float(item["clean"].max()) == 0.0
        assert float(item["degraded"].max()) > 0.1


def test_noise_sigma_range_and_noisy_folder(tmp_path):
    write(tmp_path / "clean", ["a.png", "b.png"])
    ds = noisy_folder(tmp_path / "clean", sigma_range=(50, 50), patch_size=32)
    item = ds[0]
    check_item(item, 32, "denoise")
    residual = (item["degraded"] - item["clean"]) * 255
    assert 30 < float(residual.std()) < 55
    quiet = SyntheticPairs(tmp_path / "clean", "noise", sigma_range=(0, 0), patch_size=32)[0]
    assert torch.equal(quiet["degraded"], quiet["clean"])


def test_synthetic_items_carry_their_level_and_real_pairs_an_unknown_one(tmp_path):
    write(tmp_path / "clean", ["a.png", "b.png"])
    levels = [SyntheticPairs(tmp_path / "clean", "blur", level_range=(0.2, 0.4), patch_size=16)[i]["severity"]
              for i in range(20)]
    assert all(0.2 <= level <= 0.4 for level in levels) and len(set(levels)) == 20
    # noise drawn by sigma: the level that gives that sigma (5 -> 0, 55 -> 1)
    assert SyntheticPairs(tmp_path / "clean", "noise", sigma_range=(30, 30), patch_size=16)[0]["severity"] == 0.5
    assert SyntheticPairs(tmp_path / "clean", "noise", sigma_range=(0, 0), patch_size=16)[0]["severity"] == 0.0
    inputs, targets = write_pairs(tmp_path / "pairs", ["x.png"], ["x.png"])
    assert math.isnan(FolderPairs(inputs, targets, patch_size=8)[0]["severity"])


def test_counterfactuals_are_the_same_patch_at_a_clearly_other_severity(tmp_path):
    write(tmp_path / "clean", ["a.png", "b.png"])
    inputs, targets = write_pairs(tmp_path / "pairs", ["x.png"], ["x.png"])
    blur = SyntheticPairs(tmp_path / "clean", "blur", level_range=(0.2, 0.8), patch_size=16)
    noise = SyntheticPairs(tmp_path / "clean", "noise", sigma_range=(5, 55), patch_size=16)
    pairs = FolderPairs(inputs, targets, patch_size=8)
    plain = [blur[i] for i in range(12)] + [noise[i] for i in range(12)]
    mixture = with_counterfactuals(TaskMixture([(blur, 1.0), (noise, 1.0), (pairs, 1.0)]))
    assert all(part.counterfactuals for part in mixture.datasets)
    for index, before in enumerate(plain):
        item = (blur if index < 12 else noise)[index % 12]
        assert same_item(item, before) and item["severity"] == before["severity"]  # the item itself is unchanged
        assert item["counterfactual"].shape == item["degraded"].shape
        assert not torch.equal(item["counterfactual"], item["degraded"])
        span = 0.6 if index < 12 else 1.0  # sigma 5-55 is level 0-1
        assert span / 3 - 1e-9 <= abs(item["counterfactual_severity"] - item["severity"]) <= 2 * span / 3 + 1e-9
    real = pairs[0]
    assert math.isnan(real["counterfactual_severity"]) and torch.equal(real["counterfactual"], real["degraded"])
    with pytest.raises(ValueError, match="SyntheticPairs or FolderPairs"):
        with_counterfactuals(TaskMixture([(blur, 1.0), (torch.utils.data.TensorDataset(torch.zeros(2)), 1.0)]))


def test_synthetic_pairs_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        SyntheticPairs(tmp_path / "missing", "noise")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        SyntheticPairs(tmp_path / "empty", "noise")
    write(tmp_path / "clean", ["a.png"])
    with pytest.raises(ValueError, match="unknown degradation kind"):
        SyntheticPairs(tmp_path / "clean", "fog")
    with pytest.raises(ValueError, match="level_range"):
        SyntheticPairs(tmp_path / "clean", "rain", level_range=(0.5, 2.0))


# ---------------------------------------------------------------------------
# Real pairs


def test_same_name_pairs_with_different_extensions_are_aligned(tmp_path):
    inputs, targets = write_pairs(tmp_path, ["1.png", "2.png", "10.png"], ["1.bmp", "2.bmp", "10.bmp"])
    ds = FolderPairs(inputs, targets, patch_size=16, seed=1, task="derain")
    assert len(ds) == 3
    for i in range(6):
        item = ds[i]
        check_item(item, 16, "derain")
        assert torch.equal(item["degraded"], item["clean"])  # same picture in both folders: crops line up
    assert same_item(ds[7], FolderPairs(inputs, targets, patch_size=16, seed=1, task="derain")[7])


def test_sots_and_reside_names_pair_with_the_scene(tmp_path):
    pairs = pair_folders(*write_pairs(tmp_path, ["1400_1.png", "1400_10.png", "1401_2_0.85.png"], ["1400.png", "1401.png"]))
    assert [(a.name, b.name) for a, b in pairs] == [
        ("1400_1.png", "1400.png"), ("1400_10.png", "1400.png"), ("1401_2_0.85.png", "1401.png")]


def test_promptir_rain_names_pair(tmp_path):
    pairs = pair_folders(*write_pairs(tmp_path, ["rain-1.png", "rain-12.png"], ["norain-1.png", "norain-12.png"]))
    assert [(a.name, b.name) for a, b in pairs] == [("rain-1.png", "norain-1.png"), ("rain-12.png", "norain-12.png")]


def test_default_task_is_the_dataset_folder_name(tmp_path):
    inputs, targets = write_pairs(tmp_path / "rain12", ["1.png"], ["1.png"])
    assert FolderPairs(inputs, targets, patch_size=8)[0]["task"] == "rain12"


def test_thin_border_size_difference_is_cropped_away(tmp_path):
    target = picture(0, 84, 100)  # like SOTS: the clean image has a thin extra border
    write(tmp_path / "target", ["5.png"], images=[target])
    write(tmp_path / "input", ["5_1.png"], images=[target[2:-2, 2:-2]])
    item = FolderPairs(tmp_path / "input", tmp_path / "target", patch_size=80)[0]
    assert torch.equal(item["degraded"], item["clean"])
    write(tmp_path / "cropped", ["5_1.png"], images=[target[:40, :40]])
    with pytest.raises(ValueError, match="same size"):
        FolderPairs(tmp_path / "cropped", tmp_path / "target", patch_size=8)[0]


def test_pair_errors_name_the_folder_and_the_layouts(tmp_path):
    write(tmp_path / "input", ["a.png"])
    with pytest.raises(ValueError, match=r"target folder .*missing.*same file names"):
        FolderPairs(tmp_path / "input", tmp_path / "missing")
    write(tmp_path / "target", ["b.png"])
    with pytest.raises(ValueError, match=r"no input .* matches a target.*norain"):
        FolderPairs(tmp_path / "input", tmp_path / "target")
    write(tmp_path / "input", ["b.png"])
    with pytest.raises(ValueError, match=r"1 inputs .* have no target .*\(e.g. a.png\)"):
        FolderPairs(tmp_path / "input", tmp_path / "target")


# ---------------------------------------------------------------------------
# PromptIR layout


def test_promptir_layout(tmp_path):
    train = tmp_path / "data" / "Train"
    write(train / "Denoise", ["100.jpg", "101.jpg"])
    write_pairs(train / "Derain", ["rain-1.png", "rain-2.png"], ["norain-1.png", "norain-2.png"])
    (train / "Derain" / "input").rename(train / "Derain" / "rainy")
    (train / "Derain" / "target").rename(train / "Derain" / "gt")
    write(train / "Dehaze" / "original", ["0001.jpg"])
    write(train / "Dehaze" / "synthetic" / "part1", ["0001_0.8_0.2.jpg", "0001_0.9_0.1.jpg"])
    found = promptir_datasets(tmp_path / "data", patch_size=16, seed=0)
    assert sorted(found) == ["dehaze", "denoise", "derain"]
    assert len(found["derain"]) == 2 and len(found["dehaze"]) == 2
    for task, ds in found.items():
        check_item(ds[3], 16, task)
    assert sorted(promptir_datasets(train, patch_size=16)) == ["dehaze", "denoise", "derain"]  # Train/ itself works too
    with pytest.raises(ValueError, match="Derain/{rainy,gt}"):
        promptir_datasets(tmp_path / "nothing-here")


# ---------------------------------------------------------------------------
# Mixtures and recipes


class Constant(Dataset):
    def __init__(self, task, size=5):
        self.task, self.size = task, size

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        return {"task": self.task, "index": index}


def test_mixture_respects_weights_and_is_deterministic():
    mix = TaskMixture([(Constant("a", 5), 3.0), (Constant("b", 7), 1.0)], seed=3)
    assert len(mix) == 12
    picks = [mix[i]["task"] for i in range(2000)]
    assert abs(picks.count("a") / 2000 - 0.75) < 0.04
    assert picks == [TaskMixture([(Constant("a"), 3.0), (Constant("b"), 1.0)], seed=3)[i]["task"] for i in range(2000)]
    assert picks != [TaskMixture([(Constant("a"), 3.0), (Constant("b"), 1.0)], seed=4)[i]["task"] for i in range(2000)]
    assert mix[1234]["index"] == 1234
    with pytest.raises(ValueError, match="positive"):
        TaskMixture([(Constant("a"), 0.0)])


def make_data_root(root):
    write(root / "clean", ["a.png", "b.png"])
    write_pairs(root / "rain", ["1.png", "2.png"], ["1.png", "2.png"])
    return root


def test_recipe_builds_a_mixture(tmp_path):
    root = make_data_root(tmp_path / "data")
    (tmp_path / "r.toml").write_text(
        "patch_size = 24\n"
        '[[task]]\nname = "denoise"\nkind = "noise"\nclean = "clean"\nsigma_range = [0, 55]\nweight = 3\n'
        '[[task]]\nname = "derain-real"\ntask = "derain"\ninput = "rain/input"\ntarget = "rain/target"\n'
    )
    mix = load_recipe(tmp_path / "r.toml", root, seed=1)
    assert len(mix) == 4 and mix.weights == [3.0, 1.0]
    tasks = {mix[i]["task"] for i in range(40)}
    assert tasks == {"denoise", "derain"}
    check_item(mix[0], 24, mix[0]["task"])
    assert same_item(mix[9], load_recipe(tmp_path / "r.toml", root, seed=1)[9])
    assert mix[0]["clean"].shape[-1] == 24
    assert load_recipe(tmp_path / "r.toml", root, patch_size=16)[0]["clean"].shape[-1] == 16
    assert load_recipe(tmp_path / "r.toml", root, task_weights={"derain-real": 2.5}).weights == [3.0, 2.5]
    dropped = load_recipe(tmp_path / "r.toml", root, seed=1, task_weights={"derain-real": 0})
    assert dropped.names == ["denoise"] and dropped.weights == [3.0]
    assert {dropped[i]["task"] for i in range(20)} == {"denoise"}
    with pytest.raises(ValueError, match="every task's weight is 0"):
        load_recipe(tmp_path / "r.toml", root, task_weights={"denoise": 0, "derain-real": 0})
    with pytest.raises(ValueError, match="no task named derain to reweight; its tasks are denoise, derain-real"):
        load_recipe(tmp_path / "r.toml", root, task_weights={"derain": 2.0})
    batch = next(iter(DataLoader(mix, batch_size=4)))
    assert batch["degraded"].shape == (4, 3, 24, 24) and len(batch["task"]) == 4


@pytest.mark.parametrize(
    "recipe, message",
    [
        ({"patch": 64, "task": [{"name": "x", "kind": "noise", "clean": "clean"}]}, "unknown key.*patch"),
        ({"task": [{"name": "x", "kind": "noise", "clean": "clean", "sigma": 5}]}, "task 'x': unknown key.*sigma"),
        ({"task": [{"name": "x", "kind": "noise", "clean": "clean", "input": "rain/input"}]}, "either kind \\+ clean"),
        ({"task": [{"name": "x", "kind": "noise", "clean": "photos"}]}, r"folder .*photos not found; pass --data DIR"),
        ({"task": [{"kind": "noise", "clean": "clean"}]}, "needs a name"),
        ({"task": []}, "no \\[\\[task\\]\\]"),
    ],
)
def test_recipe_errors_are_clear(tmp_path, recipe, message):
    root = make_data_root(tmp_path / "data")
    with pytest.raises(ValueError, match=message):
        load_recipe(recipe, root)


def test_bad_toml_and_missing_recipe_file(tmp_path):
    (tmp_path / "bad.toml").write_text("name = = 1\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_recipe(tmp_path / "bad.toml", tmp_path)
    with pytest.raises(ValueError, match="not found"):
        load_recipe(tmp_path / "absent.toml", tmp_path)


@pytest.mark.parametrize("name", ["lupi-small.toml", "lupi-small-clean.toml", "noise-only.toml", "three-task.toml",
                                  "diagnosis/deblur-only.toml", "diagnosis/deblur-clean.toml",
                                  "diagnosis/deblur-denoise.toml", "diagnosis/no-tone.toml"])
def test_shipped_recipes_load_on_a_matching_layout(tmp_path, name):
    """Build the folders each shipped recipe names, with tiny images, and load it."""
    recipe = tomllib.loads((RECIPES / name).read_text())
    mix = load_recipe(RECIPES / name, recipe_layout(tmp_path, RECIPES / name))
    assert len(mix.datasets) == len(recipe["task"])
    check_item(mix[0], recipe["patch_size"], mix[0]["task"])


def test_a_task_spec_checks_itself_and_is_frozen():
    with pytest.raises(ValueError, match="either kind \\+ clean"):
        TaskSpec(name="x", kind="noise")
    with pytest.raises(ValueError, match="synthetic tasks .* only"):
        TaskSpec(name="x", input="a", target="b", sigma_range=(0.0, 5.0))
    with pytest.raises(ValueError, match="weight must be a positive"):
        TaskSpec(name="x", kind="noise", clean="c", weight=0.0)
    spec = TaskSpec(name="x", kind="noise", clean="c")
    with pytest.raises(AttributeError):
        spec.weight = 2.0


def test_a_clean_input_task_pairs_a_folder_with_itself(tmp_path):
    root = make_data_root(tmp_path / "data")
    mix = load_recipe({"task": [{"name": "keep", "task": "clean", "input": "clean", "target": "clean"}]}, root,
                      patch_size=16)
    item = mix[3]
    assert item["task"] == "clean" and torch.equal(item["degraded"], item["clean"])
