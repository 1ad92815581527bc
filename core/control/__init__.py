"""Kill switch: pure handler plus three doors (signed command files, local HTTP API, SIGUSR1)."""

from core.control.commands import (
    ControlAction,
    ControlCommand,
    ControlReason,
    InMemoryNonceStore,
    NonceStore,
    SignedCommand,
    VerifyResult,
    canonical_body,
    new_command,
    secret_from_env,
    sign_command,
    verify_command,
)
from core.control.killswitch import CommandOutcome, KillAction, KillSwitchState, handle_command

__all__ = [
    "CommandOutcome",
    "ControlAction",
    "ControlCommand",
    "ControlReason",
    "InMemoryNonceStore",
    "KillAction",
    "KillSwitchState",
    "NonceStore",
    "SignedCommand",
    "VerifyResult",
    "canonical_body",
    "handle_command",
    "new_command",
    "secret_from_env",
    "sign_command",
    "verify_command",
]
