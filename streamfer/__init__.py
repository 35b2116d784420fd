"""streamfer: facial emotions on video streams (capture → detect → classify → render).

Importing the package quiets the native libraries' start-up logs (TensorFlow's oneDNN and
CPU-feature notes, absl's "before InitializeLog" warning, MediaPipe/glog INFO lines) before
any of them loads, in this process and in the child processes it starts; a value the user
set is kept.
"""

import os

for _name, _value in (("TF_CPP_MIN_LOG_LEVEL", "2"), ("GLOG_minloglevel", "2"),
                      ("OPENCV_LOG_LEVEL", "ERROR"), ("OPENCV_FFMPEG_LOGLEVEL", "-8")):
    os.environ.setdefault(_name, _value)
