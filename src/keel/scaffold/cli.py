"""`keel new`: generators that write code in Keel's own style."""

from __future__ import annotations

import typer

from keel.scaffold.feature_cli import feature

# keel-only
from keel.scaffold.project_cli import project

# /keel-only

new_app = typer.Typer(
    help="Generate a new project, or a new feature of this one.", no_args_is_help=True
)
new_app.command("feature")(feature)
# keel-only
new_app.command("project")(project)
# /keel-only
