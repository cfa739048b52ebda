"""The YAML menu DSL and its sans-IO engine.

Schema, loader and whole-menu checks, the engine (state + input -> screen + actions + next
state), rendering and pagination within the USSD limits, the declared actions
(`action_specs/`) and the default operator profile (`profiles/default/`). No I/O: the engine asks
for actions by name and the edge (`gateway/actions/`) runs them. Imports nothing from `gateway/`
or `ledger/`; from `sms/` only the pure GSM alphabet facts of `sms.encoding`.
"""

from menus.action_specs.catalogue import ACTIONS, ActionSpec
from menus.engine import (
    ActionRequest,
    EngineError,
    Screen,
    SessionState,
    Step,
    answer,
    resume,
    start,
)
from menus.loader import (
    DEFAULT_PROFILE_DIR,
    MenuLoadError,
    MenuSet,
    Problem,
    UnknownMenu,
    check_command,
    check_paths,
    load_menus,
)
from menus.schema import Menu, VarSpec

__all__ = [
    "ACTIONS",
    "DEFAULT_PROFILE_DIR",
    "ActionRequest",
    "ActionSpec",
    "EngineError",
    "Menu",
    "MenuLoadError",
    "MenuSet",
    "Problem",
    "Screen",
    "SessionState",
    "Step",
    "UnknownMenu",
    "VarSpec",
    "answer",
    "check_command",
    "check_paths",
    "load_menus",
    "resume",
    "start",
]
