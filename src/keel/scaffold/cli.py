"""`keel new`: generators that write code in Keel's own style."""

from __future__ import annotations

import typer

# keel-only
from keel.scaffold.project_cli import project

# /keel-only

new_app = typer.Typer(help="Generate code in Keel's own style.", no_args_is_help=True)
# keel-only
new_app.command("project")(project)
# /keel-only
