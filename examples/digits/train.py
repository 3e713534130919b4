"""Train the bundled example: a LeNet-style CNN on scikit-learn's digits.

    pip install 'axc[train]'          # torch==2.13.0 (CPU) and scikit-learn
    python examples/digits/train.py   # writes digits_cnn.onnx, test.npz, calib.npz
    python examples/digits/train.py --deep   # examples/digits_deep/digits_deep_cnn.onnx

The 1,797 8x8 images (values 0..16, scaled to 0..1) are split 75/25,
stratified, with a fixed seed. The network has two 3x3 conv layers with
ReLU and 2x2 max pooling, then two dense layers. The committed files are
what this script writes, so the demo needs no training.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def data(seed: int = 0) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    return tuple(train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y))


def main() -> None:
    import torch
    from torch import nn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--deep", action="store_true",
        help="the deeper CNN of examples/digits_deep (four conv layers, wider)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.out = args.out or (HERE.parent / "digits_deep" if args.deep else HERE)
    name = "digits_deep_cnn.onnx" if args.deep else "digits_cnn.onnx"

    torch.manual_seed(args.seed)
    x_train, x_test, y_train, y_test = data(args.seed)
    if args.deep:
        model = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4 -> 2x2
            nn.Flatten(),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4 -> 2x2
            nn.Flatten(),
            nn.Linear(64, 32),
            nn.ReLU(),
            nn.Linear(32, 10),
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(xt))
        for start in range(0, len(xt), 32):
            batch = order[start : start + 32]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[batch]), yt[batch])
            loss.backward()
            optimizer.step()
        if (epoch + 1) % 20 == 0:
            print(f"epoch {epoch + 1}: loss {loss.item():.4f}")

    model.eval()
    with torch.no_grad():
        accuracy = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
    print(f"held-out accuracy (torch): {accuracy:.4f} on {len(y_test)} images")

    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / name
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, 8, 8),),
        str(onnx_path),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}},
        opset_version=17,
        dynamo=False,
    )
    np.savez_compressed(args.out / "test.npz", x=x_test, y=y_test)
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(x_train), size=200, replace=False)
    np.savez_compressed(args.out / "calib.npz", x=x_train[pick], y=y_train[pick])

    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path))
    logits = session.run(None, {"image": x_test})[0]
    print(f"held-out accuracy (onnxruntime): {(logits.argmax(1) == y_test).mean():.4f}")
    print(f"wrote {onnx_path}, test.npz ({len(y_test)} images), calib.npz (200 images)")


if __name__ == "__main__":
    main()
