"""Audio in: decoding, channels, levels and voice activity."""

SAMPLE_RATE = 16_000
"""Every engine and the VAD work on 16 kHz mono float32."""
