"""Writes the masked-autoencoder reference fixture used by Tests/MedTensorTests (run once, with PyTorch installed;
commit the output).

A small instance of Scripts/reference/torch_mae_step.py's TinyMAE (32 x 32 gray, patch 8, encoder 32 x 2 with 2 heads,
decoder 16 x 1 with 2 heads, mask ratio 0.75) with seeded weights and one batch: saves the state dictionary (under
`weight/`), the input, the masking noise the forward pass draws (same seed, drawn first), the loss and every
parameter's gradient after one backward pass, as Tests/MedTensorTests/Fixtures/mae_reference.safetensors. It also
stores 2-D sine-cosine position embeddings computed here with NumPy (`sincos/32`, `sincos/16`: a 4 x 4 grid, a zero
class row first) for the test of MedSelect's own.
Usage: $(Scripts/reference/torch-env) Scripts/make-mae-fixture.py
"""
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "reference"))
import torch_mae_step as ref  # noqa: E402


def sincos_2d(width, grid):
    """Row 0 zero (class token); patch (row, col): first half encodes the column, second half the row; each half is
    sin(p w_k) then cos(p w_k), w_k = 1 / 10000^(k / (width / 4))."""
    quarter = width // 4
    omega = 1.0 / 10000 ** (np.arange(quarter, dtype=np.float64) / quarter)
    out = np.zeros((1 + grid * grid, width))
    for row in range(grid):
        for col in range(grid):
            m = 1 + row * grid + col
            for half, p in ((0, col), (1, row)):
                out[m, half * 2 * quarter:half * 2 * quarter + quarter] = np.sin(p * omega)
                out[m, half * 2 * quarter + quarter:(half + 1) * 2 * quarter] = np.cos(p * omega)
    return torch.tensor(out, dtype=torch.float32)


torch.manual_seed(0)
model = ref.TinyMAE(img=32, patch=8, in_ch=1, dim=32, depth=2, heads=2, ddim=16, ddepth=1, dheads=2, mask_ratio=0.75)
with torch.no_grad():  # tokens away from zero, so that they matter in the test
    model.cls.normal_(std=0.5)
    model.mask_token.normal_(std=0.5)
model.train()
x = torch.rand(3, 1, 32, 32)
torch.manual_seed(1)
noise = torch.rand(3, model.n)
torch.manual_seed(1)
loss = model(x)  # its first random draw is the same noise
loss.backward()
tensors = {f"weight/{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
tensors.update({f"grad/{k}": p.grad.detach().contiguous() for k, p in model.named_parameters()})
tensors["input"] = x.contiguous()
tensors["noise"] = noise.contiguous()
tensors["sincos/32"] = sincos_2d(32, 4)
tensors["sincos/16"] = sincos_2d(16, 4)
out = os.path.join(here, "..", "Tests", "MedTensorTests", "Fixtures", "mae_reference.safetensors")
save_file(tensors, out, metadata={"loss": repr(loss.item()), "torch": torch.__version__,
                                  "config": "img=32 patch=8 dim=32 depth=2 heads=2 ddim=16 ddepth=1 dheads=2 mask=0.75"})
print(f"wrote {out}: loss {loss.item():.6f}")
