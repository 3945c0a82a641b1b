"""Transcripts of LINSTOR REST exchanges: the recording format, recording, and replay against the emulator."""
