#!/usr/bin/env python3
"""distnet's resample_crop against PIL's antialiased BILINEAR resize with a box (what torchvision's
RandomResizedCrop and Resize + CenterCrop call on PIL images), on photo-like images: shrinking
(up to 6x), enlarging, fractional boxes, non-square outputs. Documented tolerance
(docs/input-throughput.md): every output value within 1 level of PIL's (PIL rounds its
intermediate pass to 8 bits and uses fixed-point weights; distnet keeps the intermediate in
float), mean absolute difference below 0.3.
Exit 77 (skip) without Pillow.
  test_resample_pil.py PATH/TO/distnet_resample_tool"""
import os, random, subprocess, sys, tempfile

try:
    from PIL import Image
except ImportError:
    print("SKIP: python3 cannot import PIL (pip install pillow)")
    sys.exit(77)

tool = sys.argv[1]
rng = random.Random(3)
worst, fails, cases = 0, 0, 0
with tempfile.TemporaryDirectory() as tmp:
    for w, h in ((500, 375), (375, 500), (97, 61)):
        px = bytearray()
        for y in range(h):
            for x in range(w):
                for c in range(3):
                    v = (x * (c + 1) * 255 // w + y * 255 // h) // 2 + rng.randrange(-40, 41)
                    px.append(max(0, min(255, v)))
        img = Image.frombytes("RGB", (w, h), bytes(px))
        src = os.path.join(tmp, "in.rgb")
        with open(src, "wb") as f:
            f.write(px)
        boxes = [(0, 0, w, h, 224, 224), (w / 4.3, h / 5.1, w / 2.2, h / 2.7, 224, 224),
                 (3, 5, w - 9, h - 7, 61, 47), (1.5, 2.25, 20.5, 14.75, 224, 160),
                 ((w - min(w, h) * 0.875) / 2, (h - min(w, h) * 0.875) / 2, min(w, h) * 0.875, min(w, h) * 0.875, 224, 224)]
        for _ in range(6):
            bw, bh = rng.uniform(8, w), rng.uniform(8, h)
            boxes.append((rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh, rng.choice((32, 224)), 224))
        for x, y, bw, bh, ow, oh in boxes:
            out = os.path.join(tmp, "out.chw")
            subprocess.run([tool, src, str(w), str(h), repr(x), repr(y), repr(bw), repr(bh), str(ow), str(oh), out],
                           check=True)
            got = open(out, "rb").read()
            ref = img.resize((ow, oh), Image.BILINEAR, box=(x, y, x + bw, y + bh)).tobytes()
            n = ow * oh
            diffs = [abs(got[c * n + i] - ref[3 * i + c]) for i in range(n) for c in range(3)]
            md, mean = max(diffs), sum(diffs) / len(diffs)
            worst = max(worst, md)
            cases += 1
            ok = md <= 1 and mean < 0.3
            fails += not ok
            print(f"{'ok' if ok else 'FAIL'}: {w}x{h} box ({x:.2f}, {y:.2f}, {bw:.2f}, {bh:.2f}) -> {ow}x{oh}: "
                  f"max diff {md}, mean {mean:.3f}")
print(f"{cases - fails} passed, {fails} failed; largest difference from PIL {worst} levels")
sys.exit(1 if fails else 0)
