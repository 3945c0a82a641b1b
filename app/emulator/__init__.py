"""In-memory LINSTOR controller emulator speaking REST API v1 (reference: linstor-rest-api.md)."""

from app.emulator.app import create_emulator_app
from app.emulator.faults import ExchangeRecord, FaultRule
from app.emulator.server import EmulatorServer, run_emulator
from app.emulator.store import EmulatorState

__all__ = [
    "EmulatorServer",
    "EmulatorState",
    "ExchangeRecord",
    "FaultRule",
    "create_emulator_app",
    "run_emulator",
]
