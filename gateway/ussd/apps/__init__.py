"""USSD applications behind routes: built-in menus and external apps over HTTP."""

from gateway.ussd.apps.base import RELEASE_CAUSES, AppContext, AppFailure, AppReply, UssdApp
from gateway.ussd.apps.registry import AppSet, UnsupportedRoute

__all__ = [
    "RELEASE_CAUSES",
    "AppContext",
    "AppFailure",
    "AppReply",
    "AppSet",
    "UnsupportedRoute",
    "UssdApp",
]
