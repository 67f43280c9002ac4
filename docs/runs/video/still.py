"""How docs/video_still.png was taken: frame 60 of the README's overlay video.

.venv/bin/lrnet predict runs/video/camvid_val_360x480.mp4 --model camvid-lite --out runs/readme_video
.venv/bin/python docs/runs/video/still.py
"""

import av

with av.open("runs/readme_video/camvid_val_360x480_overlay.mp4") as container:
    for index, frame in enumerate(container.decode(video=0)):
        if index == 60:
            frame.to_image().save("docs/video_still.png")
            break
