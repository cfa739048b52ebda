"""USSD applications behind routes: built-in menus and external apps over HTTP."""

from gateway.apps.base import RELEASE_CAUSES, AppContext, AppFailure, AppReply, UssdApp
from gateway.apps.registry import AppSet, UnsupportedRoute

__all__ = [
    "RELEASE_CAUSES",
    "AppContext",
    "AppFailure",
    "AppReply",
    "AppSet",
    "UnsupportedRoute",
    "UssdApp",
]
