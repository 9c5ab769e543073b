//! `vnetbed`: a virtualized network testbed for lost-notification virtio-net bugs.

mod cli;
mod commands;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    cli::init_logging(cli.verbose);
    let code = commands::dispatch(cli.command);
    std::process::exit(code);
}
