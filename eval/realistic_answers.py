"""Realistic detection answers for the speed benchmarks (issue 19): what Gemma 4 writes.

`detection_answers(count, seed)` returns seeded answers in Gemma 4's published format (a
```json fenced list, one `{"box_2d": [y1, x1, y2, x2], "label": ...}` item per line,
0..1000 coordinates), each with 5-40 boxes labelled with COCO class names, and the
(W, H) of the image they describe. Tokenised with the tiny model's tokenizer they are
~900 tokens on average (that tokenizer's merges are few, so a real Gemma 4 tokenizer
writes the same answer in fewer tokens). `bench_postprocess` parses them;
`bench_speed --answers replay` forces the model to write them (replayed lengths).
"""

from __future__ import annotations

import random

LABELS = (
    "person|bicycle|car|motorcycle|airplane|bus|train|truck|boat|traffic light|fire hydrant|stop sign|parking meter|"
    "bench|bird|cat|dog|horse|sheep|cow|elephant|bear|zebra|giraffe|backpack|umbrella|handbag|tie|suitcase|frisbee|"
    "skis|snowboard|sports ball|kite|baseball bat|baseball glove|skateboard|surfboard|tennis racket|bottle|wine glass|"
    "cup|fork|knife|spoon|bowl|banana|apple|sandwich|orange|broccoli|carrot|hot dog|pizza|donut|cake|chair|couch|"
    "potted plant|bed|dining table|toilet|tv|laptop|mouse|remote|keyboard|cell phone|microwave|oven|toaster|sink|"
    "refrigerator|book|clock|vase|scissors|teddy bear|hair drier|toothbrush"
).split("|")
SIZES = [(640, 480), (480, 640), (1280, 720), (512, 512), (1920, 1080), (800, 1200)]


def detection_answers(count: int, seed: int = 0, boxes: tuple[int, int] = (5, 40)) -> list[tuple[str, tuple[int, int]]]:
    """Return `count` seeded Gemma 4 detection answers with `boxes` (min, max) items, and their image sizes."""
    rng = random.Random(seed)
    answers = []
    for _ in range(count):
        lines = []
        for _ in range(rng.randint(*boxes)):
            y1, y2 = sorted(rng.randint(0, 999) for _ in range(2))
            x1, x2 = sorted(rng.randint(0, 999) for _ in range(2))
            lines.append(f'  {{"box_2d": [{y1}, {x1}, {y2 + 1}, {x2 + 1}], "label": "{rng.choice(LABELS)}"}}')
        answers.append(("```json\n[\n" + ",\n".join(lines) + "\n]\n```", rng.choice(SIZES)))
    return answers
