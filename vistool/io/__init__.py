"""Image and video input.

`load_image` loads an image once, as displayed, in RGB (see `vistool.io.images`);
`sample_video` samples frames from a video with their timestamps (see `vistool.io.video`).
The default pixel limit lives in `vistool.io.images.DEFAULT_MAX_PIXELS`.
"""

from vistool.io.images import LoadedImage, load_image
from vistool.io.video import VideoFrames, sample_video

__all__ = ["LoadedImage", "VideoFrames", "load_image", "sample_video"]
