//! The `cio-emulator` binary: see [`cio_emulator::run_cli`].

fn main() {
    std::process::exit(cio_emulator::run_cli(std::env::args_os()));
}
