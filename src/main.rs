fn main() -> std::process::ExitCode {
    clipgan::cli::main()
}
