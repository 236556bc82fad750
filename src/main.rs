fn main() {
    std::process::exit(orch::run(std::env::args_os()));
}
