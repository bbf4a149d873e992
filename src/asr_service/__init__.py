"""Speech recognition for 12345 government hotline recordings."""

import os

# The libraries' own telemetry, off before any of them is imported. onnxruntime (the VAD) otherwise writes a device
# id and an event database under ~/.cache/Microsoft and a session file in the temp folder, and queues events for a
# Microsoft endpoint; the Hugging Face hub sends usage pings when it downloads. Neither belongs on a government
# network. An operator can still set either variable explicitly.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
