"""A simulated Bitbucket Cloud host (the Connect protocol's other side) for tests and demos.

Imports nothing from `strongroom`, `addon` or `workers`: an independent implementation, so a bug in
Strongroom's protocol code cannot hide behind the same bug here.
"""
from .core import NotFound, Sandbox
from .install import InstallError
from .model import AccessToken, Delivery, Installation

__all__ = ["Sandbox", "InstallError", "NotFound", "Installation", "Delivery", "AccessToken"]
