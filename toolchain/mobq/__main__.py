from mobq.cli import cli

cli()
