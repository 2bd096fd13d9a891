"""The README's s3:// pipeline, run as written against moto with the AWS variables set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import aiopipe as ap
from aiopipe.tfrecord._writing import write

pytestmark = pytest.mark.anyio

BUCKET = "aiopipe-test"


async def test_readme_pipeline(aws_env: str, s3: Any, tmp_path: Path) -> None:
    images = np.arange(10 * 28 * 28, dtype=np.float32).reshape(10, 28, 28)
    for part in range(3):
        path = tmp_path / f"part-{part}.tfrecord.gz"
        write(path, [img.tobytes() for img in images], compression="GZIP")
        s3.put_object(Bucket=BUCKET, Key=f"readme/part-{part}.tfrecord.gz", Body=path.read_bytes())
    pipe = (
        ap.from_files(f"s3://{BUCKET}/readme/part-*.tfrecord.gz", shuffle=True, seed=0)
        .read(ap.readers.TFRecords(compression="GZIP"), parallel=64)
        .map(ap.decode.raw("float32", shape=(28, 28)), workers=4)
        .batch(8)
    )
    shapes, total = [], 0.0
    with anyio.fail_after(30):
        async with pipe.open() as batches:
            async for batch in batches:
                shapes.append(batch.shape)
                total += float(batch.sum(dtype=np.float64))
    assert shapes == [(8, 28, 28)] * 3 + [(6, 28, 28)]
    assert total == 3 * float(images.sum(dtype=np.float64))
