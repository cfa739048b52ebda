"""The YAML menu DSL and its sans-IO engine."""

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
