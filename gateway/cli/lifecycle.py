"""Transitional: the names other modules still import from here until the lead moves them to
deployments/ (removed in this helper's last commit)."""

import subprocess  # noqa: F401

from deployments.local_ray import cluster_address as _cluster_address  # noqa: F401
from deployments.local_ray import start_ray as _start_ray  # noqa: F401
from gateway.cli.client import AdminClient  # noqa: F401
