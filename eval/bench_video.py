"""Video sampling + preprocessing time (issue 19, item 4): frames decoded at full size vs at the budget's size.

    python -m eval.bench_video [--seconds 60] [--frames 32] [--rounds 5] [--threads 1] [--family gemma4]

Writes a `--seconds` long 1280x720 30 fps clip with OpenCV into a temporary folder (a
moving gradient with a frame counter: a realistic bitrate, not noise; deleted after),
then times, in interleaved rounds:

- full: `sample_video(clip, num_frames=32)` (decord decodes 1280x720 frames) + the tiny
  Gemma 4 backend's preprocessing of one video request at the 70-token frame budget
  (chat template, video processor: the processor shrinks every frame to 528x288);
- small: the same with `decode_size=backend.video_frame_size` (decord scales frames
  to the size the processor keeps while decoding).

`--family qwen25vl` / `qwen3vl` times the same with that family's tiny checkpoint and
video processor (its own frame rule, the processor's own pixel range).

Reported: CPU seconds (this process and its threads) and wall seconds, best and median,
and a check that both give the same input ids and pixel-tensor shape.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def write_clip(path: Path, seconds: float, width: int = 1280, height: int = 720, fps: int = 30) -> Path:
    """Write a `seconds` long clip of a moving colour gradient with a frame counter; return its path."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    yy, xx = np.mgrid[0:height, 0:width]
    for index in range(int(seconds * fps)):
        frame = np.stack([(xx + index * 4) % 256, (yy + index * 2) % 256, (xx + yy) // 8 % 256], axis=-1).astype(np.uint8)
        cv2.putText(frame, str(index), (60, 120), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 6)
        writer.write(frame)
    writer.release()
    return path


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, write the clip, time both paths in interleaved rounds, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clip", help="use this clip (e.g. one written by an earlier run) instead of writing one")
    parser.add_argument("--family", default="gemma4", help="a family that takes video: gemma4, qwen25vl, qwen3vl")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    from vistool.io import sample_video
    from vistool.profiles import get_profile
    from vistool.runtime.tiny import make_tiny_model
    from vistool.runtime.transformers_backend import TransformersBackend
    from vistool.runtime.types import GenerationRequest

    folder = Path(tempfile.mkdtemp(prefix="vistool-bench-video-"))
    try:
        started = time.perf_counter()
        clip = Path(args.clip) if args.clip else write_clip(folder / "clip720.mp4", args.seconds)
        print(f"clip: {clip.name}, {clip.stat().st_size / 2**20:.1f} MiB, ready in {time.perf_counter() - started:.0f} s")
        backend = TransformersBackend(str(make_tiny_model(folder / "tiny", family=args.family)), device="cpu", dtype="float32")
        budget = get_profile(args.family).video_budget

        def run(small: bool):
            frames = sample_video(clip, num_frames=args.frames, decode_size=backend.video_frame_size if small else None)
            prepared = backend._prepare([GenerationRequest("What happens?", video=frames, budget=budget)])
            return frames, prepared.inputs

        paths = {"full frames": False, "decoded small": True}
        times = {name: ([], []) for name in paths}
        outputs = {}
        run(True)  # warm: imports, decoder initialisation
        for index in range(args.rounds):
            order = list(paths.items())
            order = order[index % 2 :] + order[: index % 2]
            for name, small in order:
                cpu, wall = time.process_time(), time.perf_counter()
                outputs[name] = run(small)
                times[name][0].append(time.process_time() - cpu)
                times[name][1].append(time.perf_counter() - wall)
        same = torch.equal(outputs["full frames"][1]["input_ids"], outputs["decoded small"][1]["input_ids"]) and (
            outputs["full frames"][1]["pixel_values_videos"].shape == outputs["decoded small"][1]["pixel_values_videos"].shape
        )
        print(f"{args.family}, {args.frames} frames, frame budget {budget or 'of the video processor'}, "
              f"{args.rounds} interleaved rounds, {args.threads} thread(s); "
              f"same input ids and pixel shape: {same}")
        print(f"{'path':<14} | {'decoded at':>10} | {'CPU best':>8} | {'CPU median':>10} | {'wall best':>9} | {'wall median':>11}")
        for name in paths:
            cpu, wall = times[name]
            size = "x".join(map(str, outputs[name][0].frames[0].size))
            print(f"{name:<14} | {size:>10} | {min(cpu):8.2f} | {statistics.median(cpu):10.2f} | "
                  f"{min(wall):9.2f} | {statistics.median(wall):11.2f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
