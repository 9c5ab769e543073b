//! One module per subcommand.

pub mod doctor;
pub mod image;
pub mod run;

use crate::cli::Command;

/// Run a subcommand; returns the process exit status.
pub fn dispatch(command: Command) -> i32 {
    match command {
        Command::Run(args) => run::main(args),
        Command::Doctor(args) => doctor::main(args),
        Command::Image(args) => image::main(args),
    }
}
