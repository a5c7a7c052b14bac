"""Writes the U-Net reference fixture used by Tests/MedTensorTests (run once, with PyTorch installed; commit the output).

A small instance of Scripts/reference/torch_unet_step.py's UNet (base 4, 2 levels, batch norm) with seeded weights, one
input batch and labels; saves the state dictionary (weights and batch-norm running statistics, under `weight/`), input,
labels, logits, the Dice+CE loss and every parameter's gradient after one backward pass, as
Tests/MedTensorTests/Fixtures/unet_reference.safetensors (metadata: the loss, and every `state_dict()` key, so that the
tests check medselect's checkpoint names against PyTorch's; `num_batches_tracked` is an int64 counter PyTorch fills in
when a loaded state dictionary lacks it, so medselect does not store it).
Usage: $(Scripts/reference/torch-env) Scripts/make-unet-fixture.py
"""
import os
import sys

import torch
from safetensors.torch import save_file

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "reference"))
import torch_unet_step as ref  # noqa: E402

torch.manual_seed(0)
model = ref.UNet(in_ch=1, n_classes=2, base=4, levels=2, norm="batch")
model.train()
x = torch.randn(2, 1, 16, 16)
y = (torch.rand(2, 16, 16) > 0.6).long()
logits = model(x)
loss = ref.dice_ce_loss(logits, y)
loss.backward()
state = model.state_dict()  # after the forward pass: running statistics updated once
tensors = {f"weight/{k}": v.detach().float().contiguous() for k, v in state.items() if "num_batches" not in k}
tensors.update({f"grad/{k}": p.grad.detach().contiguous() for k, p in model.named_parameters()})
tensors["input"] = x.contiguous()
tensors["labels"] = y.float().contiguous()
tensors["logits"] = logits.detach().contiguous()
out = os.path.join(here, "..", "Tests", "MedTensorTests", "Fixtures", "unet_reference.safetensors")
save_file(tensors, out, metadata={"loss": repr(loss.item()), "torch": torch.__version__, "config": "base=4 levels=2 norm=batch",
                                  "state_dict_keys": ",".join(state.keys())})
print(f"wrote {out}: loss {loss.item():.6f}")
