"""Helpers of the `vistool` command line (vistool/cli.py holds the commands themselves).

- `errors`: run the click command behind the Typer app and turn every failure into one
  line on stderr with an honest exit code (2 usage or setup, 1 internal, 130/143 interrupted);
  help without `<bool>` metavars on flags.
- `checks`: option checks that must pass before a model loads (--save, --device, --dtype, --port).
- `progress`: a token counter on stderr while a local model generates.
- `view`: the JSON a command prints (boxes, points and regions as plain lists).
"""
