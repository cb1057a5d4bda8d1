# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
import pytest
import timm
import torch
from torch import nn

from monai_tonno.networks import create_slice_classifier


def norm_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "bn" in k}


def test_frozen_batch_norm_does_not_move_in_a_training_step():
    model = create_slice_classifier("test_resnet", in_channels=2, norm="frozen_batch")
    model.train()
    before = norm_buffers(model)
    assert before, "the model should have normalisation state"
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(torch.randn(8, 2, 32, 32) * 5 + 3).pow(2).mean()
    loss.backward()
    optimizer.step()
    for key, value in norm_buffers(model).items():
        torch.testing.assert_close(value, before[key], msg=f"{key} moved")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_plain_batch_norm_does_move():
    """The control of the test above: without freezing, one training step changes the running statistics."""
    model = create_slice_classifier("test_resnet", in_channels=2, norm="batch").train()
    before = norm_buffers(model)
    model(torch.randn(8, 2, 32, 32) * 5 + 3)
    assert any(not torch.equal(v, before[k]) for k, v in norm_buffers(model).items())


def test_group_norm_keeps_every_other_weight():
    torch.manual_seed(0)
    reference = timm.create_model("test_resnet", num_classes=1, in_chans=1)
    path_state = reference.state_dict()
    torch.manual_seed(0)
    converted = create_slice_classifier("test_resnet", in_channels=1, norm="group")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in converted.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in converted.modules())
    norm_names = {name for name, m in reference.named_modules() if isinstance(m, nn.BatchNorm2d)}
    converted_state = converted.state_dict()
    for key, value in path_state.items():
        owner = key.rsplit(".", 1)[0]
        if owner in norm_names:
            continue
        torch.testing.assert_close(converted_state[key], value, msg=key)


def test_local_imagenet_checkpoint_loads_into_two_channels(tmp_path):
    """A 3-channel, 1000-class checkpoint (as ImageNet weights are) adapts its stem and leaves the head."""
    imagenet = timm.create_model("test_resnet", num_classes=1000, in_chans=3)
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": imagenet.state_dict()}, path)
    with pytest.warns(UserWarning, match="fc.weight"):  # the 1000-class head is left, and the user is told
        model = create_slice_classifier("test_resnet", in_channels=2, norm="batch", pretrained=str(path))
    stem = imagenet.state_dict()["conv1.0.weight"]
    expected = timm.models.adapt_input_conv(2, stem)
    torch.testing.assert_close(model.state_dict()["conv1.0.weight"], expected)
    torch.testing.assert_close(
        model.state_dict()["layer1.0.conv1.weight"], imagenet.state_dict()["layer1.0.conv1.weight"]
    )
    assert model(torch.rand(3, 2, 32, 32)).shape == (3, 1)


def test_own_checkpoint_round_trip(tmp_path):
    trained = create_slice_classifier("test_resnet", in_channels=2, norm="frozen_batch")
    path = tmp_path / "model.pt"
    torch.save(trained.state_dict(), path)
    loaded = create_slice_classifier("test_resnet", in_channels=2, norm="frozen_batch", pretrained=path)
    x = torch.rand(2, 2, 32, 32)
    torch.testing.assert_close(loaded.eval()(x), trained.eval()(x))


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="norm must be one of"):
        create_slice_classifier("test_resnet", norm="layer")
    with pytest.raises(ValueError, match="unknown timm model"):
        create_slice_classifier("resnet_does_not_exist")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_slice_classifier("test_resnet", pretrained=tmp_path / "missing.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not read"):
        create_slice_classifier("test_resnet", pretrained=corrupt)
    other = tmp_path / "other.pth"
    torch.save(timm.create_model("test_efficientnet").state_dict(), other)
    with pytest.raises(ValueError, match="do not fit"):
        create_slice_classifier("test_resnet", pretrained=other)


def test_failed_hub_download_says_how_to_use_a_local_file(monkeypatch):
    real_create = timm.create_model

    def offline(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("no internet")
        return real_create(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(RuntimeError, match="pretrained='/path/to/file.pth'"):
        create_slice_classifier("test_resnet", pretrained=True)


def test_imagenet_batch_norm_checkpoint_into_group_norm_and_group_norm_checkpoint_back(tmp_path):
    imagenet = timm.create_model("test_resnet", num_classes=1000, in_chans=3)
    path = tmp_path / "imagenet.pth"
    torch.save(imagenet.state_dict(), path)
    model = create_slice_classifier("test_resnet", in_channels=1, norm="group", pretrained=path)
    torch.testing.assert_close(model.state_dict()["bn1.weight"], imagenet.state_dict()["bn1.weight"])
    trained = tmp_path / "trained.pt"
    torch.save(model.state_dict(), trained)
    again = create_slice_classifier("test_resnet", in_channels=1, norm="group", pretrained=trained)
    x = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(again.eval()(x), model.eval()(x))
    with pytest.raises(ValueError, match="missing"):  # no batch statistics in a GroupNorm checkpoint
        create_slice_classifier("test_resnet", in_channels=1, norm="batch", pretrained=trained)
